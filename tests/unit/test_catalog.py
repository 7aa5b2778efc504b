"""The catalog's schema versions, its PDF page-text cache, its writes, and that no SQL runs outside it."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.index.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog, ChunkRow, DocumentRow


def test_an_old_catalog_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[1])
    old.execute(
        "INSERT INTO documents (id, path, status, updated_at) VALUES ('d1', '/docs/3M_2018_10K.txt', 'indexed', 0)"
    )
    old.execute(
        "INSERT INTO chunks (id, document_id, ordinal, page_start, page_end, text, text_hash)"
        " VALUES ('c1', 'd1', 0, 1, 1, 'Capital expenditures rose.', 'h1')"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    catalog = Catalog(path)
    try:
        assert catalog.schema_version == SCHEMA_VERSION
        assert [d.path for d in catalog.documents()] == ["/docs/3M_2018_10K.txt"]  # nothing lost
        assert [c.text for c in catalog.chunks_of("d1")] == ["Capital expenditures rose."]
        with catalog.transaction() as db:  # the old chunks are in the new lexical index, with the file's title
            query = "SELECT title FROM chunks_fts WHERE chunks_fts MATCH 'expenditure AND 3m'"
            rows = [tuple(row) for row in db.execute(query)]
        assert rows == [("3M 2018 10K",)]
        catalog.put("page-key", ["First paragraph.", "Second."])
        assert catalog.get("page-key") == ["First paragraph.", "Second."]
        assert catalog.get("unknown") is None
    finally:
        catalog.close()


def test_a_catalog_from_a_newer_archivist_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(ConfigError, match="written by a newer Archivist"):
        Catalog(path)


def test_title_is_the_words_of_the_file_name() -> None:
    from rag.index.catalog import title_for

    assert title_for("/reports/3M_2018_10K.pdf") == "3M 2018 10K"
    assert title_for("/notes/meeting-notes.v2.md") == "meeting notes v2"


def _document(path: str) -> DocumentRow:
    return DocumentRow(id=path, path=path, kind="text", content_hash="h", size=10, mtime_ns=1, status="indexed",
                       error=None, page_count=1, warnings=(), updated_at=0.0)


def test_touching_a_document_changes_only_its_size_and_mtime(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        with catalog.transaction() as db:
            Catalog.put_document(db, _document("/docs/a.txt"))
            Catalog.put_document(db, _document("/docs/b.txt"))
        with catalog.transaction() as db:
            Catalog.touch_document(db, "/docs/a.txt", 12, 7)
        a, b = catalog.documents()
        assert (a.path, a.size, a.mtime_ns, a.content_hash, a.status) == ("/docs/a.txt", 12, 7, "h", "indexed")
        assert (b.size, b.mtime_ns) == (10, 1)
    finally:
        catalog.close()


@pytest.mark.parametrize("keep_caches", [True, False])
def test_clearing_the_catalog_drops_every_document_and_chunk_and_the_caches_unless_kept(
    tmp_path: Path, keep_caches: bool
) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        chunk = ChunkRow(id="c1", document_id="/docs/a.txt", ordinal=0, page_start=1, page_end=1, headings=(),
                         text="Apples keep well.", text_hash="t1")
        with catalog.transaction() as db:
            Catalog.put_document(db, _document("/docs/a.txt"))
            Catalog.replace_chunks(db, "/docs/a.txt", [chunk])
        catalog.cache_vectors("model", {"t0": np.ones(4, dtype=np.float32)})
        catalog.put("page-key", ["A paragraph."])

        catalog.clear(keep_caches=keep_caches)

        assert catalog.documents() == [] and catalog.chunk_count() == 0
        assert catalog.lexical_search(["apples"], 5) == []
        assert bool(catalog.cached_vectors("model", ["t0"])) is keep_caches
        assert (catalog.get("page-key") is not None) is keep_caches
    finally:
        catalog.close()


# A query run, or SQL text built: a statement, or a condition on a table alias (`d.kind IN (`, `GLOB ?`).
SQL = re.compile(
    r"\.execute(many|script)?\(|\b(SELECT|INSERT INTO|DELETE FROM|UPDATE \w+ SET)\b|\b[a-z]\.\w+ IN \(|GLOB \?"
)


def test_no_sql_is_run_outside_the_catalog() -> None:
    """The catalog is the one module that knows the schema: everything else goes through its methods, and
    no other module builds SQL text (search filters were once turned into a WHERE clause in search)."""
    root = Path(__file__).resolve().parents[2]
    outside = [
        f"{path.relative_to(root)}:{number}"
        for package in ("rag", "ingest", "ui", "evaluation")
        for path in sorted((root / package).rglob("*.py"))
        if path != root / "rag" / "index" / "catalog.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]
    assert outside == []
