"""A large document is written in parts (issue 12, item 7): each part commits its passages, progress is told
per part, an interruption loses at most one part, and the next write goes on without re-embedding, losing
or doubling anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.control import read_progress
from ingest.pipeline import Ingester, Outcome
from rag.index.catalog import Catalog
from rag.index.index import DocumentWrite, FileFacts, Index, NewChunk
from rag.search.retrieve import search
from rag.settings import load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


class Interrupted(Exception):
    pass


def facts(path: str, content: str = "x") -> FileFacts:
    return FileFacts(path=path, content_hash=f"hash-{content}", size=10, mtime_ns=1)


def passages(count: int, label: str = "passage") -> tuple[NewChunk, ...]:
    return tuple(NewChunk(text=f"{label} number {n} word{n}", page_start=1, page_end=1) for n in range(count))


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def interrupt_after_parts(index: Index, parts: int) -> None:
    seen = []

    def hook(step: str) -> None:
        if step == "after-part":
            seen.append(step)
            if len(seen) == parts:
                raise Interrupted

    index.step_hook = hook


def assert_whole(index: Index, count: int, label: str = "passage") -> None:
    [document] = index.catalog.documents()
    assert document.status == "indexed"
    rows = index.catalog.chunks_of(document.id)
    assert [row.ordinal for row in rows] == list(range(count))
    assert [row.text for row in rows] == [chunk.text for chunk in passages(count, label)]
    assert index.catalog.all_chunk_ids() == index.vectors.ids()


def test_each_part_commits_and_is_told(index: Index) -> None:
    told: list[tuple[int, int]] = []
    write = DocumentWrite(facts("/d/big.txt"), "text", 1, passages(25))
    [result] = index.write_documents([write], on_part=lambda _, done, total: told.append((done, total)),
                                     part_chunks=10)
    assert told == [(0, 25), (10, 25), (20, 25), (25, 25)]
    assert (result.chunks, result.embedded, result.added_vectors) == (25, 25, 25)
    assert_whole(index, 25)


def test_an_interrupted_write_keeps_its_parts_and_the_next_goes_on(index: Index) -> None:
    embedder = index.embedder
    assert isinstance(embedder, HashingEmbedder)
    write = DocumentWrite(facts("/d/big.txt"), "text", 1, passages(25))
    interrupt_after_parts(index, 2)
    with pytest.raises(Interrupted):
        index.write_documents([write], part_chunks=10)
    index.step_hook = None
    [document] = index.catalog.documents()
    assert document.status == "partial" and index.catalog.chunk_count() == 20  # two parts kept
    assert len(search(index, "word3", 3, mode="lexical")) == 1  # and searchable meanwhile
    embedder.embedded_texts.clear()
    [result] = index.write_documents([write], part_chunks=10)
    assert len(embedder.embedded_texts) == 5 and result.embedded == 5  # only the part not yet written
    assert_whole(index, 25)


def test_a_changed_file_after_an_interruption_leaves_no_stale_passage(index: Index) -> None:
    index.write_documents([DocumentWrite(facts("/d/big.txt", "1"), "text", 1, passages(25, "old"))],
                          part_chunks=10)
    interrupt_after_parts(index, 1)
    with pytest.raises(Interrupted):
        index.write_documents([DocumentWrite(facts("/d/big.txt", "2"), "text", 1, passages(30, "mid"))],
                              part_chunks=10)
    index.step_hook = None
    index.write_documents([DocumentWrite(facts("/d/big.txt", "3"), "text", 1, passages(22, "new"))],
                          part_chunks=10)
    assert_whole(index, 22, "new")
    assert search(index, "old mid", 5, mode="lexical") == []


def test_the_pipeline_resumes_a_partial_file_and_shows_passages(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "\n\n".join(f"Paragraph {n} tells of the harbour, the lamp and the orchard in turn." for n in range(400))
    (docs / "big.txt").write_text(text)
    (docs / "small.txt").write_text("A small note about apples.\n")
    settings = load_settings(data_dir=tmp_path / "data", commit_chunks=16, chunk_tokens=32, chunk_overlap_tokens=0)
    embedder = HashingEmbedder()
    index = Index(Catalog(tmp_path / "data" / "catalog.sqlite3"), InMemoryVectorStore(), embedder)
    ingester = Ingester(index, settings)
    told: list[tuple[int, int]] = []
    ingester.on_passages = lambda done, total: told.append((done, total))
    published = []

    def hook(step: str) -> None:
        if step == "after-part":
            progress = read_progress(tmp_path / "data")
            published.append(progress and (progress.passages_done, progress.passages_total))
            if len(published) == 3:
                raise Interrupted

    index.step_hook = hook
    with pytest.raises(Interrupted):
        ingester.ingest_paths([docs])
    total = told[0][1]
    assert told == [(0, total), (16, total), (32, total)] and total > 48
    assert published[1] == (16, total)  # the board other processes read (`archivist status`, the page)
    big = index.catalog.document_by_path(str(docs / "big.txt"))
    assert big is not None and big.status == "partial"

    index.step_hook = None
    embedder.embedded_texts.clear()
    report = ingester.ingest_paths([docs])
    assert {r.path: r.outcome for r in report.results}[str(docs / "big.txt")] == Outcome.INDEXED
    # Resumed: the three committed parts are not embedded again (the fourth was lost with the interruption).
    assert len(embedder.embedded_texts) <= total - 48 + 1
    rows = index.catalog.chunks_of(big.id)
    assert len(rows) == total and [row.ordinal for row in rows] == list(range(total))
    assert index.catalog.all_chunk_ids() == index.vectors.ids()
    assert index.catalog.document_by_path(str(docs / "big.txt")).status == "indexed"  # type: ignore[union-attr]
    progress = read_progress(tmp_path / "data")
    assert progress is not None and (progress.passages_done, progress.passages_total) == (0, 0)


def test_stopping_between_parts_keeps_them_and_the_next_run_finishes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "\n\n".join(f"Paragraph {n} of the long report, on its own topic." for n in range(300))
    (docs / "big.txt").write_text(text)
    settings = load_settings(data_dir=tmp_path / "data", commit_chunks=16, chunk_tokens=32, chunk_overlap_tokens=0)
    index = Index(Catalog(tmp_path / "data" / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
    ingester = Ingester(index, settings)
    ingester.on_passages = lambda done, total: ingester.stop() if done >= 32 else None
    report = ingester.ingest_paths([docs])  # stops after the second part, without an error
    assert report.results == []
    big = index.catalog.document_by_path(str(docs / "big.txt"))
    assert big is not None and big.status == "partial" and index.catalog.chunk_count() == 32
    ingester.stopping.clear()
    ingester.on_passages = None
    assert [r.outcome for r in ingester.ingest_paths([docs]).results] == [Outcome.INDEXED]
    assert index.catalog.document_by_path(str(docs / "big.txt")).status == "indexed"  # type: ignore[union-attr]
    assert index.catalog.all_chunk_ids() == index.vectors.ids()


def test_the_cli_bar_shows_passages_within_a_large_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    from ui.progress import FileProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with FileProgress(2, "Indexing") as bar:
        bar.passages(1500, 90322)
        assert "passages 1,500/90,322" in terminal.getvalue()
        bar.advance()
    assert "1/2" in terminal.getvalue()


def test_a_check_lists_an_unfinished_file_as_stale_so_a_repair_finishes_it() -> None:
    from ingest.library import DiskFile, compare_index
    from rag.index.catalog import DocumentRow

    document = DocumentRow(id="d", path="/d/big.txt", kind="text", content_hash="h", size=10, mtime_ns=1,
                           status="partial", error=None, page_count=1, warnings=(), updated_at=0.0)
    check = compare_index({"/d/big.txt": DiskFile("/d/big.txt", 10, 1)}, [document], set(), set(), lambda _: True)
    assert check.stale == ("/d/big.txt",) and not check.ok
