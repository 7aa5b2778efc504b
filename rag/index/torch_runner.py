"""The torch embedding backend: sentence-transformers' own model in fp32 (reference vectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rag.index.embedder import logger
from rag.records import Vectors


class TorchRunner:
    """fp32 sentence-transformers, exactly as the model's authors run it."""

    def __init__(self, model_dir: Path, device: str, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # "Loading weights" would clutter the CLI's stderr
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if threads:
            torch.set_num_threads(threads)
        logger.info("loading embedding model from %s (torch, fp32)", model_dir)
        self._model: Any = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
        self.tokenizer_json: str = self._model.tokenizer.backend_tokenizer.to_str()
        dimension = self._model.get_embedding_dimension()
        self.dimension = int(dimension) if dimension is not None else 384
        self.max_tokens = int(self._model.max_seq_length or 256)

    def encode(self, texts: list[str]) -> Vectors:
        vectors = self._model.encode(
            texts,
            batch_size=max(len(texts), 1),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
