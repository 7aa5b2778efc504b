"""The thread pools behind search and embedding have a close path: closing ends their threads, and using
them again afterwards starts new ones."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.search import retrieve
from tests.fakes import HashingEmbedder, InMemoryVectorStore


def threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix) and thread.is_alive()]


def test_the_lexical_pool_closes_and_comes_back(tmp_path: Path) -> None:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
    try:
        retrieve.search(index, "anything at all", 3)
        assert threads_named("archivist-lexical")
        retrieve.close_lexical_pool()
        assert not threads_named("archivist-lexical")
        assert retrieve.search(index, "anything at all", 3) == []  # a new pool, made on use
    finally:
        retrieve.close_lexical_pool()
        index.close()


@pytest.mark.slow
def test_closing_the_index_ends_the_embedders_threads(tmp_path: Path) -> None:
    from rag.index.local_model import SentenceTransformerEmbedder

    others = set(threads_named("archivist-embed"))  # other tests' embedders (the session's real model)
    embedder = SentenceTransformerEmbedder(threads=2)
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), embedder)
    texts = ["one", "two words", "three words here", "and now four words"]  # several lengths: several calls
    index.embedder.embed_batch(texts)
    assert set(threads_named("archivist-embed")) - others
    index.close()
    assert not set(threads_named("archivist-embed")) - others
    assert embedder.embed_batch(texts).shape == (4, embedder.dimension)  # usable again (a new pool)
    embedder.close()
