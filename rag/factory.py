"""Building the real components from the settings, in one place for every face (CLI, UI, benchmarks)."""

from __future__ import annotations

from rag.embedder import Embedder, SentenceTransformerEmbedder, model_name_for
from rag.index import Index, open_index
from rag.llm import ChatModel, OllamaChat
from rag.settings import Settings


def make_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embedding_model_dir)


def open_default_index(settings: Settings) -> Index:
    """The index in the settings' data folder; the embedding model loads on first use."""
    return open_index(
        settings.data_dir,
        lambda: make_embedder(settings),
        embed_batch_size=settings.embed_batch_size,
        model_name=model_name_for(settings.embedding_model_dir),
    )


def make_chat(settings: Settings) -> ChatModel:
    return OllamaChat(settings)
