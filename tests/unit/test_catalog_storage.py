"""How the catalog stores what it holds (issue 12, item 7 and the review's storage items): the full-text
index keeps no copy of the text, the embedding cache no copy of vectors the store holds, both caches are
bounded, an old catalog upgrades in place, and a reader opens the catalog while a writer holds it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.index.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, _statements
from rag.index.index import FileFacts, Index, NewChunk
from rag.search.retrieve import search
from tests.conftest import subprocess_env
from tests.fakes import HashingEmbedder, InMemoryVectorStore


def facts(path: str, content: str = "x") -> FileFacts:
    return FileFacts(path=path, content_hash=f"hash-{content}", size=10, mtime_ns=1)


def chunks(*texts: str) -> list[NewChunk]:
    return [NewChunk(text=text, page_start=1, page_end=1) for text in texts]


def fts_consistent(catalog: Catalog) -> None:
    """FTS5's own check that the full-text index matches the text it indexes (raises if not)."""
    with catalog.transaction() as db:
        db.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def test_the_full_text_index_holds_no_copy_of_the_text(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("apples are red", "the sky is blue"))
    tables = {row[0] for row in index.catalog._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "chunks_fts_content" not in tables  # FTS5's own copy of every chunk's text
    assert [h.text for h in search(index, "sky", 2, mode="lexical")] == ["the sky is blue"]


def test_the_full_text_index_follows_edits_renames_and_deletions(index: Index) -> None:
    index.write_document(facts("/d/alpha_report.txt", "1"), "text", 1, chunks("apples are red", "pears are green"))
    index.write_document(facts("/d/beta.txt", "1"), "text", 1, chunks("plums are purple"))
    fts_consistent(index.catalog)
    index.write_document(facts("/d/alpha_report.txt", "2"), "text", 1, chunks("apples are red", "figs are ripe"))
    assert index.move_document("/d/alpha_report.txt", facts("/d/gamma_notes.txt", "2"))
    fts_consistent(index.catalog)
    assert search(index, "gamma apples", 2, mode="lexical")[0].text == "apples are red"
    assert search(index, "pears", 2, mode="lexical") == []
    assert index.remove_document("/d/gamma_notes.txt")
    index.record_problem(facts("/d/beta.txt", "2"), "failed", "damaged")
    fts_consistent(index.catalog)
    assert search(index, "apples plums gamma beta", 5, mode="lexical") == []


def test_the_embedding_cache_keeps_only_vectors_no_chunk_holds(index: Index) -> None:
    embedder = index.embedder
    assert isinstance(embedder, HashingEmbedder)
    index.write_document(facts("/d/a.txt", "1"), "text", 1, chunks("kept text", "dropped text"))
    count = "SELECT count(*) FROM embedding_cache"
    assert index.catalog._db.execute(count).fetchone()[0] == 0  # the vector store has them
    index.write_document(facts("/d/a.txt", "2"), "text", 1, chunks("kept text"))
    assert index.catalog._db.execute(count).fetchone()[0] == 1  # "dropped text", which no chunk holds now
    # Undoing the edit embeds nothing: the vector comes back from the cache, and leaves it again.
    embedder.embedded_texts.clear()
    index.write_document(facts("/d/a.txt", "3"), "text", 1, chunks("kept text", "dropped text"))
    assert embedder.embedded_texts == []
    assert index.catalog._db.execute(count).fetchone()[0] == 0
    # The same text in another document is read back from the vector store, not embedded again.
    index.write_document(facts("/d/b.txt", "1"), "text", 1, chunks("kept text"))
    assert embedder.embedded_texts == []
    assert index.catalog.all_chunk_ids() == index.vectors.ids()


def test_the_embedding_cache_is_bounded_oldest_first(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    vector = np.ones(4, dtype=np.float32)
    for n in range(5):
        catalog.cache_vectors("m", {f"h{n}": vector}, limit=3)
    rows = [row[0] for row in catalog._db.execute("SELECT text_hash FROM embedding_cache ORDER BY text_hash")]
    assert rows == ["h2", "h3", "h4"]


def test_the_page_text_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    for n in range(3):
        catalog.put(f"p{n}", [f"page {n}"], limit=3)
    assert catalog.get("p0") == ["page 0"]  # used again: now the most recent
    catalog.put("p3", ["page 3"], limit=3)
    assert catalog.get("p1") is None
    assert [catalog.get(key) for key in ("p0", "p2", "p3")] == [["page 0"], ["page 2"], ["page 3"]]


def version_4_catalog(path: Path) -> None:
    """A catalog as Archivist wrote it at schema version 4 (FTS5 with its own copy; a cache of every vector)."""
    old = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 5):
        for statement in _statements(MIGRATIONS[version]):
            old.execute(statement)
    old.execute("PRAGMA user_version = 4")
    old.execute("INSERT INTO documents (id, path, status, updated_at, title) "
                "VALUES ('d1', '/docs/3M_2018_10K.txt', 'indexed', 0, '3M 2018 10K')")
    old.execute("INSERT INTO chunks (id, document_id, ordinal, page_start, page_end, text, text_hash)"
                " VALUES ('c1', 'd1', 0, 1, 1, 'Capital expenditures rose.', 'held')")
    blob = np.ones(4, dtype=np.float32).tobytes()
    old.executemany("INSERT INTO embedding_cache (model, text_hash, vector) VALUES ('m', ?, ?)",
                    [("held", blob), ("unheld", blob)])
    old.close()


def test_a_version_4_catalog_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    version_4_catalog(path)
    catalog = Catalog(path)
    assert catalog.schema_version == SCHEMA_VERSION == 5
    assert [c.text for c in catalog.chunks_of("d1")] == ["Capital expenditures rose."]  # nothing lost
    assert catalog.lexical_search(["expenditure", "3m"], 5) and catalog.lexical_search(["10k"], 5)
    fts_consistent(catalog)
    assert set(catalog.cached_vectors("m", ["held", "unheld"])) == {"unheld"}  # the store holds "held"
    with catalog.transaction() as db:  # the old document can still be renamed and deleted cleanly
        db.execute("UPDATE documents SET title = 'Other' WHERE id = 'd1'")
    fts_consistent(catalog)
    with catalog.transaction() as db:
        Catalog.delete_document(db, "d1")
    fts_consistent(catalog)
    assert catalog.lexical_search(["expenditure"], 5) == [] and catalog.chunk_count() == 0


READER = textwrap.dedent("""
    import sys
    from rag.index.catalog import Catalog
    catalog = Catalog(__import__("pathlib").Path(sys.argv[1]))
    catalog._db.execute("PRAGMA busy_timeout = 2000")
    print(catalog.schema_version, catalog.chunk_count(), len(catalog.documents()))
""")


def test_a_reader_opens_the_catalog_while_a_writer_holds_a_long_transaction(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("apples are red"))
    path = index.catalog.path
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE documents SET size = 99")
    try:
        # A second process, as `archivist status` is: it must open and read, not wait for the write lock.
        reader = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True,
                                timeout=120, env=subprocess_env())
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert reader.returncode == 0, reader.stderr[-2000:]
    assert reader.stdout.split() == [str(SCHEMA_VERSION), "1", "1"]
