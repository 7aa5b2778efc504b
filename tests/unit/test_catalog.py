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
        "INSERT INTO documents (id, path, status, updated_at) VALUES ('d1', '/docs/a.txt', 'indexed', 0)"
    )
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    catalog = Catalog(path)
    try:
        assert catalog.schema_version == SCHEMA_VERSION
        assert [d.path for d in catalog.documents()] == ["/docs/a.txt"]  # nothing lost
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
