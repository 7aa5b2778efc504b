"""The catalog's schema versions and its PDF page-text cache."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rag.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog
from rag.errors import ConfigError


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
    from rag.catalog import title_for

    assert title_for("/reports/3M_2018_10K.pdf") == "3M 2018 10K"
    assert title_for("/notes/meeting-notes.v2.md") == "meeting notes v2"
