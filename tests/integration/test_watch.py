"""The watcher on a real folder, with real Chroma: every kind of change ends with index == disk."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.pipeline import FileResult, Ingester, Outcome
from ingest.watch import Watcher
from rag.index.index import Index, open_index
from rag.settings import Settings
from tests.fakes import HashingEmbedder

pytestmark = pytest.mark.slow


class Harness:
    def __init__(self, docs: Path, index: Index, watcher: Watcher, results: list[FileResult]) -> None:
        self.docs, self.index, self.watcher, self.results = docs, index, watcher, results

    def indexed(self) -> dict[str, str]:
        """Relative path -> full text of every indexed document, as the catalog has it."""
        out = {}
        for document in self.index.catalog.documents():
            if document.status == "indexed":
                text = "\n".join(chunk.text for chunk in self.index.catalog.chunks_of(document.id))
                out[Path(document.path).relative_to(self.docs).as_posix()] = text
        return out

    def wait(self, predicate: Callable[[dict[str, str]], bool], timeout: float = 30.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.indexed()
            # The vectors of a removed chunk go just after the catalog's commit (an orphan is invisible to
            # search meanwhile), so catalog and vectors are awaited together, and must come to agree.
            if (predicate(state) and self.watcher.pending == 0
                    and self.index.catalog.all_chunk_ids() == self.index.vectors.ids()):
                return state
            time.sleep(0.1)
        raise AssertionError(f"the index never matched; it holds {sorted(self.indexed())}, catalog and vectors "
                             f"differ by {self.index.catalog.all_chunk_ids() ^ self.index.vectors.ids()}")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "start.md").write_text("Present before the watcher started.\n")
    index = open_index(tmp_path / "data", HashingEmbedder())
    results: list[FileResult] = []
    lock = threading.Lock()

    def record(result: FileResult) -> None:
        with lock:
            results.append(result)

    watcher = Watcher(Ingester(index, Settings(data_dir=tmp_path / "data")), [docs], quiet_seconds=0.3, on_file=record)
    watcher.start()
    assert watcher.ready.wait(30)
    yield Harness(docs, index, watcher, results)
    watcher.stop()
    index.close()


def test_start_up_scan_indexes_what_is_there(harness: Harness) -> None:
    assert harness.wait(lambda s: "start.md" in s)["start.md"] == "Present before the watcher started."


def test_create_modify_delete(harness: Harness) -> None:
    note = harness.docs / "note.txt"
    note.write_text("First version about apricots.\n")
    harness.wait(lambda s: "apricots" in s.get("note.txt", ""))
    note.write_text("Second version about bananas.\n")
    harness.wait(lambda s: "bananas" in s.get("note.txt", ""))
    note.unlink()
    harness.wait(lambda s: "note.txt" not in s)


def test_editor_save_via_temp_file_and_rename(harness: Harness) -> None:
    target = harness.docs / "draft.md"
    target.write_text("Draft one.\n")
    harness.wait(lambda s: "draft.md" in s)
    temp = harness.docs / ".draft.md.swp"
    temp.write_text("Draft two, saved by an editor.\n")
    os.replace(temp, target)
    state = harness.wait(lambda s: "Draft two" in s.get("draft.md", ""))
    assert ".draft.md.swp" not in state


def test_move_and_folder_rename_embed_nothing(harness: Harness) -> None:
    folder = harness.docs / "projects"
    folder.mkdir()
    (folder / "plan.md").write_text("The plan involves persimmons.\n")
    harness.wait(lambda s: "projects/plan.md" in s)
    embedder = harness.index.embedder
    assert isinstance(embedder, HashingEmbedder)
    embedder.embedded_texts.clear()
    os.rename(folder / "plan.md", folder / "plan-v2.md")
    harness.wait(lambda s: "projects/plan-v2.md" in s and "projects/plan.md" not in s)
    os.rename(folder, harness.docs / "archive")
    state = harness.wait(lambda s: "archive/plan-v2.md" in s and not any(p.startswith("projects/") for p in s))
    assert "persimmons" in state["archive/plan-v2.md"]
    assert embedder.embedded_texts == []


def test_a_growing_file_is_indexed_once_whole(harness: Harness) -> None:
    target = harness.docs / "growing.txt"
    with target.open("w") as handle:
        for part in range(6):
            handle.write(f"Part {part} of a slow copy.\n")
            handle.flush()
            time.sleep(0.5)
    state = harness.wait(lambda s: "Part 5" in s.get("growing.txt", ""))
    assert all(f"Part {n}" in state["growing.txt"] for n in range(6))
    indexed = [r for r in harness.results if r.path == str(target) and r.outcome == Outcome.INDEXED]
    assert len(indexed) == 1


def test_hidden_and_temporary_files_are_ignored(harness: Harness) -> None:
    (harness.docs / ".secret.md").write_text("hidden")
    (harness.docs / "~$report.docx").write_bytes(b"lock")
    (harness.docs / "notes.md~").write_text("backup")
    (harness.docs / ".git").mkdir()
    (harness.docs / ".git" / "HEAD.md").write_text("ref")
    (harness.docs / "visible.md").write_text("Visible text.\n")
    state = harness.wait(lambda s: "visible.md" in s)
    assert set(state) == {"start.md", "visible.md"}
    assert all(".git" not in r.path and "~" not in Path(r.path).name for r in harness.results)
