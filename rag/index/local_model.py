"""The real embedding model, loaded from a local folder (the packaged one by default) and run by one of
the backends: int8 under ONNX Runtime (default) or torch."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import ConfigError
from rag.index.embedder import (
    DEFAULT_BACKEND,
    TOKEN_COUNT_CACHE,
    Embedder,
    check_backend,
    default_cache_dir,
    model_name_for,
    packaged_model_dir,
)
from rag.index.onnx_runner import BACKGROUND_TEXTS_PER_CORE, OnnxRunner
from rag.index.priority import PriorityLock, is_background
from rag.index.torch_runner import TorchRunner
from rag.records import Vectors


class SentenceTransformerEmbedder(Embedder):
    """The real model, on the CPU, loaded from a local folder and run by one of the backends."""

    def __init__(
        self,
        model_dir: Path | None = None,
        device: str = "cpu",
        backend: str = DEFAULT_BACKEND,
        cache_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        started = time.perf_counter()
        self.model_dir = model_dir or packaged_model_dir()
        if not (self.model_dir / "modules.json").is_file():
            raise ConfigError(
                f"No sentence-transformers model in {self.model_dir}: expected modules.json there. "
                "Reinstall with `make install`, or point ARCHIVIST_EMBEDDING_MODEL_DIR at a model folder."
            )
        self.backend = check_backend(backend)
        self.model_file: Path | None = None  # the int8 backend's ONNX file
        self.built = False  # whether this load had to make that file (first use on this machine)
        self._runner: TorchRunner | OnnxRunner
        if self.backend == "torch":
            self._runner = TorchRunner(self.model_dir, device, threads)
        else:
            self._runner = OnnxRunner(self.model_dir, cache_dir or default_cache_dir(), threads)
            self.model_file, self.built = self._runner.model_file, self._runner.built
        # A private copy of the fast tokenizer, untruncated, for counting: cheaper than the wrapper and
        # silent about texts longer than the model takes (counting them is the point).
        from tokenizers import Tokenizer

        self._counter: Any = Tokenizer.from_str(self._runner.tokenizer_json)
        self._counter.no_truncation()
        self._counter.no_padding()
        # Re-indexing an edited file counts the same paragraphs and sentences again: remember the counts.
        self._cached_count = functools.lru_cache(maxsize=TOKEN_COUNT_CACHE)(self._count_uncached)
        # One batch at a time (each runtime already uses every core it may), a question's before indexing's.
        self._lock = PriorityLock()
        self.dimension = self._runner.dimension
        self.max_tokens = self._runner.max_tokens
        self.name = model_name_for(model_dir, self.backend)
        self.load_seconds = time.perf_counter() - started

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock.hold():
            return self._runner.encode(list(texts))

    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> Vectors:
        if is_background():
            # Batch by batch, so a question may slip in between two of them. The int8 runner runs each text
            # alone, so small batches cost it nothing, and a question then waits for a few texts, not for 64
            # (the indexing thread runs at low CPU priority: on a busy machine 64 texts took it 8 s).
            if isinstance(self._runner, OnnxRunner):
                batch_size = min(batch_size, BACKGROUND_TEXTS_PER_CORE * self._runner.workers)
            return super().embed(texts, batch_size, on_progress)
        with self._lock.hold():  # a question's batches as one: indexing waits until the question is done
            return super().embed(texts, batch_size, on_progress)

    def count_tokens(self, text: str) -> int:
        return self._cached_count(text)

    def close(self) -> None:
        if isinstance(self._runner, OnnxRunner):
            self._runner.close()

    def embed_short(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not isinstance(self._runner, OnnxRunner):
            return self.embed(texts)
        with self._lock.hold():
            return self._runner.encode(list(texts), group_same_length=True)

    def _count_uncached(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)
