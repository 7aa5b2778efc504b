"""Building the real components from the settings, in one place for every face (CLI, UI, benchmarks)."""

from __future__ import annotations

from rag.egress import allow_urls
from rag.index.embedder import Embedder, model_name_for
from rag.index.index import Index, open_index
from rag.index.local_model import SentenceTransformerEmbedder
from rag.llm.chat import ChatModel
from rag.llm.ollama import OllamaChat
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings
from rag.tools.calculator import Calculator


def make_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(
        settings.embedding_model_dir,
        backend=settings.embedding_backend,
        cache_dir=settings.embedding_cache_dir,
        threads=settings.embedding_threads,
    )


def open_default_index(settings: Settings) -> Index:
    """The index in the settings' data folder; the embedding model loads on first use."""
    allow_configured_servers(settings)
    return open_index(
        settings.data_dir,
        lambda: make_embedder(settings),
        embed_batch_size=settings.embed_batch_size,
        model_name=model_name_for(settings.embedding_model_dir, settings.embedding_backend),
        chroma_url=settings.chroma_url,
    )


def allow_configured_servers(settings: Settings) -> None:
    """The servers these settings name may be reached, wherever they are (see rag.egress)."""
    allow_urls([settings.ollama_host if settings.llm == "ollama" else settings.openai_base_url,
                getattr(settings, "chroma_url", None)])


def make_chat(settings: Settings) -> ChatModel:
    """The chat model the settings ask for: Ollama, or any OpenAI-compatible server (ARCHIVIST_LLM=openai)."""
    allow_configured_servers(settings)
    if settings.llm == "openai":
        return OpenAIChat(settings)
    return OllamaChat(settings)


def make_calculator(settings: Settings) -> Calculator:
    """Research mode's calculator: model-written Python in the WebAssembly sandbox, with the settings' limits.
    Its worker process starts at the first calculation, not here."""
    from rag.tools.sandbox import SandboxCalculator

    return SandboxCalculator.from_settings(settings)
