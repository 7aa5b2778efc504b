"""The library's pure rules and small stores: watched folders, the documents table, checking the index."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ingest import library
from ingest.library import (
    DiskFile,
    FailedFile,
    FolderStore,
    IndexCheck,
    check_folder,
    clear_index,
    compare_index,
    document_table,
    forget_folder,
)
from ingest.pipeline import Ingester
from rag.errors import FolderError
from rag.index.catalog import Catalog, DocumentRow
from rag.index.index import Index
from rag.search.retrieve import search
from rag.settings import load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


# ----- watched folders -----
def test_check_folder_rules() -> None:
    watched = [Path("/home/ann/Documents"), Path("/mnt/share")]
    assert check_folder(Path("/home/ann/Music"), watched) is None
    assert check_folder(Path("/home/ann"), watched) is None  # contains one: it may replace it
    assert check_folder(Path("/mnt/share"), watched) == "/mnt/share is already watched."
    assert check_folder(Path("/home/ann/Documents/tax"), watched) == (
        "/home/ann/Documents/tax is inside /home/ann/Documents, which is already watched."
    )
    assert check_folder(Path("/home/ann/Documents2"), watched) is None  # a prefix of the name is not a parent


def test_folders_are_saved_and_removed(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "data")
    assert store.folders() == []
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()

    assert store.add(tmp_path / "a" / ".." / "a") == tmp_path / "a"  # normalised
    store.add(tmp_path / "b")

    assert FolderStore(tmp_path / "data").folders() == [tmp_path / "a", tmp_path / "b"]
    assert json.loads((tmp_path / "data" / "folders.json").read_text()) == {
        "folders": [str(tmp_path / "a"), str(tmp_path / "b")]
    }
    store.remove(tmp_path / "a")
    assert store.folders() == [tmp_path / "b"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["folders.json"]  # no temporary left


def test_adding_a_folder_refuses_with_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FolderStore(tmp_path / "data")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (tmp_path / "file.txt").write_text("x")
    store.add(docs)

    cases = {
        tmp_path / "nowhere": "does not exist",
        tmp_path / "file.txt": "is not a folder",
        docs: "is already watched",
        docs / "sub": f"is inside {docs}, which is already watched",
    }
    for folder, reason in cases.items():
        with pytest.raises(FolderError, match=reason):
            store.add(folder)
    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(library.os, "access", lambda path, mode: False)  # tests run as root: access is faked
    with pytest.raises(FolderError, match=r"locked cannot be read \(permission denied\)"):
        store.add(tmp_path / "locked")
    with pytest.raises(FolderError, match="is not a watched folder"):
        store.remove(tmp_path / "locked")
    assert store.folders() == [docs]


def test_a_parent_replaces_the_watched_folders_inside_it(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "data")
    for name in ("home/a", "home/b", "other"):
        (tmp_path / name).mkdir(parents=True)
        store.add(tmp_path / name)
    store.add(tmp_path / "home")
    assert store.folders() == [tmp_path / "other", tmp_path / "home"]


def test_create_makes_a_missing_folder(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "data")
    assert store.add(tmp_path / "new" / "folder", create=True).is_dir()


def test_a_damaged_list_reads_as_empty(tmp_path: Path) -> None:
    (tmp_path / "folders.json").write_text("{oops")
    assert FolderStore(tmp_path).folders() == []


# ----- the index: documents table, forgetting a folder, clearing -----
@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(Catalog(tmp_path / "data" / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def ingest(index: Index, tmp_path: Path, files: dict[str, str]) -> Path:
    docs = tmp_path / "docs"
    for name, text in files.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text)
    Ingester(index, load_settings(data_dir=tmp_path / "data")).ingest_paths([docs])
    return docs


def test_document_table_has_every_column(index: Index, tmp_path: Path) -> None:
    docs = ingest(index, tmp_path, {"a.md": "# Alpha\n\nFirst paragraph.\n\n# Beta\n\nSecond one.\n",
                                    "empty.txt": "", "photo.bmp": "BM"})

    rows = {row.name: row for row in document_table(index)}

    alpha = rows["a.md"]
    info = (docs / "a.md").stat()
    assert (alpha.path, alpha.kind, alpha.status, alpha.pages, alpha.reason) == (str(docs / "a.md"), "markdown",
                                                                                  "indexed", 1, None)
    assert alpha.chunks == len(index.catalog.chunks_of(index.catalog.document_by_path(alpha.path).id)) >= 1
    assert (alpha.size, alpha.modified_ns, alpha.modified) == (info.st_size, info.st_mtime_ns, info.st_mtime_ns / 1e9)
    assert (rows["empty.txt"].status, rows["empty.txt"].chunks) == ("failed", 0)
    assert rows["empty.txt"].reason
    assert (rows["photo.bmp"].status, rows["photo.bmp"].reason) == ("skipped", "unsupported file type .bmp")


def test_forget_folder_removes_rows_text_and_vectors(index: Index, tmp_path: Path) -> None:
    docs = ingest(index, tmp_path, {"keep/k.md": "Kumquats keep.\n", "drop/d.md": "Durians drop.\n",
                                    "drop/deeper/e.md": "Elderberries drop too.\n"})

    removed = forget_folder(index, docs / "drop")

    assert sorted(removed) == [str(docs / "drop" / "d.md"), str(docs / "drop" / "deeper" / "e.md")]
    assert [row.path for row in index.catalog.documents()] == [str(docs / "keep" / "k.md")]
    assert index.vectors.ids() == index.catalog.all_chunk_ids() and index.vectors.count() == 1
    assert search(index, "durians elderberries", 5, mode="lexical") == []


def test_clear_index_empties_everything(index: Index, tmp_path: Path) -> None:
    ingest(index, tmp_path, {"a.md": "Apples.\n", "b.md": "Bananas.\n"})
    clear_index(index, keep_embeddings=True)
    assert index.catalog.documents() == [] and index.catalog.chunk_count() == 0 and index.vectors.count() == 0
    assert search(index, "apples", 5, mode="lexical") == []
    model = index.embedder.name
    with index.catalog.transaction() as db:
        cached = db.execute("SELECT count(*) FROM embedding_cache WHERE model = ?", (model,)).fetchone()[0]
    assert cached == 2  # kept when asked
    clear_index(index)
    with index.catalog.transaction() as db:
        assert db.execute("SELECT count(*) FROM embedding_cache").fetchone()[0] == 0


# ----- checking: the pure comparison -----
def row(path: str, size: int = 10, mtime: int = 1, status: str = "indexed", content: str | None = None,
        error: str | None = None) -> DocumentRow:
    return DocumentRow(id=path, path=path, kind="text", content_hash=content or path, size=size, mtime_ns=mtime,
                       status=status, error=error, page_count=1, warnings=(), updated_at=0.0)


def test_compare_finds_each_kind_of_problem() -> None:
    disk = {path: DiskFile(path, size, mtime) for path, size, mtime in [
        ("/d/same.txt", 10, 1), ("/d/edited.txt", 12, 2), ("/d/bad.txt", 10, 1), ("/d/new.txt", 5, 1),
        ("/d/new.bmp", 5, 1), ("/d/twin1.txt", 10, 1), ("/d/twin2.txt", 10, 1), ("/d/bad-edited.txt", 11, 3),
    ]}
    documents = [
        row("/d/same.txt"), row("/d/edited.txt"), row("/d/gone.txt"),
        row("/d/bad.txt", status="failed", error="empty file"), row("/d/bad-edited.txt", status="failed"),
        row("/d/twin1.txt", content="h"), row("/d/twin2.txt", content="h"),
    ]

    check = compare_index(disk, documents, chunk_ids={"c1", "c2", "c3"}, vector_ids={"c2", "c3", "x"},
                          supported=lambda path: path.endswith(".txt"))

    assert check == IndexCheck(
        stale=("/d/bad-edited.txt", "/d/edited.txt"),
        missing=("/d/gone.txt",),
        failed=(FailedFile("/d/bad.txt", "empty file"),),
        unindexed=("/d/new.txt",),
        duplicates=(("/d/twin1.txt", "/d/twin2.txt"),),
        orphan_vectors=1,
        missing_vectors=1,
    )
    assert check.problems == 7 and not check.ok


def test_documents_of_an_absent_folder_are_not_missing() -> None:
    documents = [row("/usb/a.txt"), row("/usb2/b.txt")]
    check = compare_index({}, documents, set(), set(), lambda path: True, absent_folders=["/usb"])
    assert check.missing == ("/usb2/b.txt",) and check.absent_folders == ("/usb",)


def test_compare_of_a_matching_index_is_ok() -> None:
    check = compare_index({"/a": DiskFile("/a", 10, 1)}, [row("/a")], {"c"}, {"c"}, lambda path: True)
    assert check.ok and check == IndexCheck()


def test_disk_snapshot_sees_candidates_and_catalogued_paths(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("a")
    (tmp_path / "docs" / ".hidden.txt").write_text("h")
    (tmp_path / "elsewhere.txt").write_text("e")
    os.symlink(tmp_path / "elsewhere.txt", tmp_path / "docs" / "link.txt")

    found = library.disk_snapshot([tmp_path / "docs"], [str(tmp_path / "elsewhere.txt"), str(tmp_path / "no.txt")])

    assert sorted(found) == [str(tmp_path / "docs" / "a.txt"), str(tmp_path / "elsewhere.txt")]
