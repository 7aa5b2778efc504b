"""The index's write order and bookkeeping, on the in-memory fakes (fast, exact)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.catalog import Catalog
from rag.index.index import DocumentWrite, FileFacts, Index, NewChunk
from rag.search.retrieve import search
from tests.fakes import HashingEmbedder, InMemoryVectorStore


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def facts(path: str, content: str = "x") -> FileFacts:
    return FileFacts(path=path, content_hash=f"hash-{content}", size=10, mtime_ns=1)


def chunks(*texts: str) -> list[NewChunk]:
    return [NewChunk(text=text, page_start=i + 1, page_end=i + 1) for i, text in enumerate(texts)]


def assert_consistent(index: Index) -> None:
    assert index.catalog.all_chunk_ids() == index.vectors.ids()


def test_write_then_search_reads_back_file_and_page(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 2, chunks("apples are red", "the sky is blue"))
    hits = search(index, "blue sky", 1)
    assert [(h.path, h.page_start, h.text) for h in hits] == [("/d/a.txt", 2, "the sky is blue")]
    assert_consistent(index)


def test_rewriting_embeds_only_changed_chunks(index: Index) -> None:
    embedder = index.embedder
    assert isinstance(embedder, HashingEmbedder)
    index.write_document(facts("/d/a.txt", "v1"), "text", 1, chunks("one", "two", "three"))
    embedder.embedded_texts.clear()
    result = index.write_document(facts("/d/a.txt", "v2"), "text", 1, chunks("one", "TWO changed", "three"))
    assert embedder.embedded_texts == ["TWO changed"]
    assert (result.added_vectors, result.removed_vectors) == (1, 1)
    assert_consistent(index)


def test_duplicate_files_are_both_findable_and_embedded_once(index: Index) -> None:
    embedder = index.embedder
    assert isinstance(embedder, HashingEmbedder)
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("shared text here"))
    index.write_document(facts("/e/copy.txt"), "text", 1, chunks("shared text here"))
    assert embedder.embedded_texts == ["shared text here"]
    assert {h.path for h in search(index, "shared text", 5)} == {"/d/a.txt", "/e/copy.txt"}
    assert_consistent(index)


def test_move_keeps_vectors_and_changes_path(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("moving text"))
    before = index.vectors.ids()
    assert index.move_document("/d/a.txt", facts("/d/b.txt"))
    assert index.vectors.ids() == before
    assert [h.path for h in search(index, "moving", 1)] == ["/d/b.txt"]


def test_remove_deletes_catalog_rows_and_vectors(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("gone soon"))
    assert index.remove_document("/d/a.txt")
    assert index.vectors.count() == 0 and index.catalog.chunk_count() == 0
    assert not index.remove_document("/d/a.txt")


def test_a_problem_replaces_the_old_version(index: Index) -> None:
    index.write_document(facts("/d/a.pdf"), "pdf", 1, chunks("old text"))
    index.record_problem(facts("/d/a.pdf", "new"), "failed", "encrypted: needs a password", "pdf")
    document = index.catalog.document_by_path("/d/a.pdf")
    assert document is not None and (document.status, document.error) == ("failed", "encrypted: needs a password")
    assert index.vectors.count() == 0
    assert_consistent(index)


def test_reconcile_removes_orphans_and_restores_missing_vectors(index: Index) -> None:
    index.write_document(facts("/d/a.txt"), "text", 1, chunks("kept", "lost"))
    lost = next(row.id for row in index.catalog.chunks_of(index.catalog.documents()[0].id) if row.text == "lost")
    index.vectors.delete([lost])
    index.vectors.upsert(["orphan"], HashingEmbedder().embed_batch(["x"]), [{"document_id": "none"}])
    assert [h.text for h in search(index, "x kept lost", 5)] != []  # the orphan is never shown
    result = index.reconcile()
    assert (result.orphans_removed, result.missing_restored) == (1, 1)
    assert_consistent(index)


def test_crash_before_catalog_commit_leaves_old_version_visible(index: Index) -> None:
    index.write_document(facts("/d/a.txt", "v1"), "text", 1, chunks("version one"))

    def crash(step: str) -> None:
        if step == "before-catalog":
            raise RuntimeError("simulated crash")

    index.step_hook = crash
    with pytest.raises(RuntimeError):
        index.write_document(facts("/d/a.txt", "v2"), "text", 1, chunks("version two"))
    index.step_hook = None
    assert [h.text for h in search(index, "version", 5)] == ["version one"]
    index.reconcile()
    assert_consistent(index)


class CountingVectorStore(InMemoryVectorStore):
    """The in-memory store, counting calls: each call to a real store has a fixed cost."""

    def __init__(self) -> None:
        super().__init__()
        self.upserts = 0

    def upsert(self, *args: object, **kwargs: object) -> None:
        self.upserts += 1
        super().upsert(*args, **kwargs)  # type: ignore[arg-type]


def test_many_documents_go_to_the_vector_store_in_one_call(tmp_path: Path) -> None:
    store = CountingVectorStore()
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), store, HashingEmbedder())
    writes = [DocumentWrite(facts(f"/d/{name}.txt", name), "text", 1, tuple(chunks(f"{name} text", "common")))
              for name in ("a", "b", "c")]
    results = index.write_documents(writes)
    assert store.upserts == 1
    assert [r.chunks for r in results] == [2, 2, 2]
    # "common" is in all three documents but embedded once, and counted once.
    assert sum(r.embedded for r in results) == 4
    assert {h.path for h in search(index, "common", 5)} == {"/d/a.txt", "/d/b.txt", "/d/c.txt"}
    assert_consistent(index)


def test_rewriting_keeps_the_rows_of_unchanged_chunks(index: Index) -> None:
    index.write_document(facts("/d/a.txt", "v1"), "text", 3, chunks("one", "two", "three"))
    rows = {row.text: row.id for row in index.catalog.chunks_of(index.catalog.documents()[0].id)}
    seqs = dict(index.catalog._db.execute("SELECT id, seq FROM chunks").fetchall())
    index.write_document(facts("/d/a.txt", "v2"), "text", 3, chunks("zero", "one", "three"))
    after = index.catalog.chunks_of(index.catalog.documents()[0].id)
    assert [(row.text, row.ordinal, row.page_start) for row in after] == [("zero", 0, 1), ("one", 1, 2),
                                                                           ("three", 2, 3)]
    # "one" and "three" kept their rows (and so their full-text entries); only "zero" is new.
    kept = dict(index.catalog._db.execute("SELECT id, seq FROM chunks").fetchall())
    assert kept[rows["one"]] == seqs[rows["one"]] and kept[rows["three"]] == seqs[rows["three"]]
    assert [h.text for h in search(index, "two", 3, mode="lexical")] == []
    assert [h.text for h in search(index, "zero", 3, mode="lexical")] == ["zero"]
    assert_consistent(index)
