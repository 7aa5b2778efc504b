"""The watcher under stress and at the edges, on a real folder with real Chroma (and the hashing embedder,
for speed): bursts, mass deletes, symlinks, folders moved in and out, changes made while it was stopped,
and files that cannot be indexed. Every test ends with the index equal to the disk."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ingest.pipeline import FileResult, Ingester, Outcome
from ingest.watch import Watcher
from rag.index.index import Index, open_index
from rag.records import Vectors
from rag.settings import Settings
from tests.fakes import HashingEmbedder

pytestmark = [
    pytest.mark.slow,
    # watchdog's inotify thread warns when a burst makes it add a new folder's watch twice ("Callback with id …
    # already exists … It will be Overwritten"). Harmless, but under filterwarnings=error the warning is raised
    # inside that thread, which dies, and the watcher then hears nothing more.
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning:watchdog.*"),
]

BURST = 1000


class Harness:
    """A watched folder, its index, and every FileResult the watcher reported (across restarts)."""

    def __init__(self, docs: Path, data_dir: Path, index: Index) -> None:
        self.docs, self.data_dir, self.index = docs, data_dir, index
        self.results: list[FileResult] = []
        self._lock = threading.Lock()
        self.watcher: Watcher | None = None

    def start(self) -> Watcher:
        """A new Watcher on the same index; returns once its start-up scan has finished."""
        ingester = Ingester(self.index, Settings(data_dir=self.data_dir))
        # A short open-file grace: files that arrive by rename (a folder moved in) never report a close, and the
        # default 10 s would only make these tests wait; nothing here depends on its length.
        self.watcher = Watcher(
            ingester, [self.docs], quiet_seconds=0.3, open_file_grace_seconds=2.0, on_file=self._record
        )
        self.watcher.start()
        assert self.watcher.ready.wait(120), "the start-up scan never finished"
        return self.watcher

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _record(self, result: FileResult) -> None:
        with self._lock:
            self.results.append(result)

    def outcomes(self, outcome: Outcome) -> Counter[str]:
        """How many times each relative path was reported with `outcome`."""
        with self._lock:
            return Counter(self.rel(r.path) for r in self.results if r.outcome == outcome)

    def rel(self, path: str) -> str:
        return Path(path).relative_to(self.docs).as_posix()

    def documents(self) -> dict[str, tuple[str, str | None]]:
        """Relative path -> (status, error) of every document in the catalog."""
        return {self.rel(d.path): (d.status, d.error) for d in self.index.catalog.documents()}

    def indexed(self) -> dict[str, str]:
        """Relative path -> full text of every indexed document, as the catalog has it."""
        out = {}
        for document in self.index.catalog.documents():
            if document.status == "indexed":
                text = "\n".join(chunk.text for chunk in self.index.catalog.chunks_of(document.id))
                out[self.rel(document.path)] = text
        return out

    def wait(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60.0,
        state: Callable[[], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Poll until the predicate holds and the watcher has nothing pending; then the vectors must match.

        Gives up after `timeout` seconds without progress (no change in the state or in the pending count): a
        loaded machine slows the watcher, which runs at low priority, but must not fail the test.
        """
        read = state or self.indexed
        assert self.watcher is not None
        current: dict[str, Any] = read()
        pending = self.watcher.pending
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A removed chunk's vector goes just after the catalog's commit: await both agreeing.
            if (predicate(current) and pending == 0
                    and self.index.catalog.all_chunk_ids() == self.index.vectors.ids()):
                return current
            time.sleep(0.2)
            progress = (current, pending)
            current, pending = read(), self.watcher.pending
            if (current, pending) != progress:
                deadline = time.monotonic() + timeout
        shown = sorted(current)[:20]
        raise AssertionError(f"the index never matched; it holds {len(current)} documents, e.g. {shown}")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    docs = tmp_path / "docs"
    docs.mkdir()
    index = open_index(tmp_path / "data", HashingEmbedder())
    h = Harness(docs, tmp_path / "data", index)
    yield h
    h.stop()
    index.close()


def counts(h: Harness) -> Callable[[], dict[str, int]]:
    """A cheap state for big folders: documents by status (polling all rows would slow the watcher)."""
    return h.index.catalog.status_counts


def write_burst(root: Path, count: int, tag: str) -> list[Path]:
    """`count` small files, half at the top of ten folders and half in a nested folder of each."""
    files = []
    for n in range(count):
        folder = root / f"{tag}-{n % 10}" / ("deep/deeper" if n % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"note-{n:04d}.txt"
        path.write_text(f"Note {n} of the {tag} burst mentions token{n}x.\n")
        files.append(path)
    return files


# ----- bursts -----
def test_a_burst_of_files_is_indexed_once_each_then_removed_at_once(harness: Harness) -> None:
    harness.start()
    files = write_burst(harness.docs, BURST, "burst")
    expected = {harness.rel(str(f)) for f in files}
    harness.wait(lambda c: c == {"indexed": BURST}, timeout=120, state=counts(harness))
    assert set(harness.documents()) == expected
    assert harness.index.vectors.count() == BURST  # one chunk each
    indexed_once = harness.outcomes(Outcome.INDEXED)
    assert set(indexed_once) == expected
    assert [path for path, times in indexed_once.items() if times != 1] == []
    assert harness.outcomes(Outcome.FAILED) == Counter()

    for folder in sorted(harness.docs.iterdir()):
        shutil.rmtree(folder)
    harness.wait(lambda c: not c, timeout=120, state=counts(harness))
    assert harness.documents() == {}
    assert harness.index.vectors.ids() == set()


def test_a_file_deleted_while_the_watcher_is_busy_is_still_removed(harness: Harness) -> None:
    harness.start()
    files = write_burst(harness.docs, 300, "busy")
    # Wait for the watcher to be at work on the burst, then delete files it has and has not reached yet.
    deadline = time.monotonic() + 60
    while not harness.index.catalog.status_counts().get("indexed"):
        assert time.monotonic() < deadline, "the watcher never started on the burst"
        time.sleep(0.05)
    doomed = files[:5] + files[-5:]
    for path in doomed:
        path.unlink()
    expected = {harness.rel(str(f)) for f in files} - {harness.rel(str(f)) for f in doomed}
    harness.wait(lambda c: c == {"indexed": len(expected)}, timeout=120, state=counts(harness))
    assert set(harness.documents()) == expected


class SlowEmbedder(HashingEmbedder):
    """The hashing embedder, slowed down, so that a burst keeps the watcher busy for a good while."""

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        time.sleep(0.05)
        return super().embed_batch(texts)


def test_stopping_during_a_burst_ends_after_the_file_in_hand(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "inbox").mkdir(parents=True)
    index = open_index(tmp_path / "data", SlowEmbedder())
    harness = Harness(docs, tmp_path / "data", index)
    watcher = harness.start()
    control = watcher.ingester.control
    try:
        # Paused, the watcher only queues changes: on resuming it takes all 300 in one batch, 15 s of work.
        control.pause()
        files = [docs / "inbox" / f"note-{n:03d}.txt" for n in range(300)]
        for n, path in enumerate(files):
            path.write_text(f"Queued note {n} about token{n}x.\n")
        deadline = time.monotonic() + 60
        while watcher.pending < len(files):
            assert time.monotonic() < deadline, f"only {watcher.pending} changes were queued"
            time.sleep(0.05)
        time.sleep(1.0)  # every change quiet for longer than the quiet period: all are settled together
        control.resume()
        while index.catalog.status_counts().get("indexed", 0) < 10:  # busy with the batch
            assert time.monotonic() < deadline, "the watcher never started on the batch"
            time.sleep(0.05)
        watcher.stop(timeout=3.0)
    finally:
        control.resume()
        index.close()  # as `archivist watch` and the page do once stop() returns
    time.sleep(1.0)  # a worker still running trips over the closed index within a file or two
    assert watcher.last_error is None


# ----- symlinks -----
def make_symlinks(docs: Path) -> None:
    """A folder with a file, a symlink loop (a folder link to its own parent) and a file link beside it."""
    (docs / "sub").mkdir(exist_ok=True)
    (docs / "sub" / "real.txt").write_text("The real file talks about lanterns.\n")
    os.symlink(docs / "sub", docs / "sub" / "loop", target_is_directory=True)
    outside = docs.parent / "outside.txt"
    outside.write_text("A file outside the watched folder, about walruses.\n")
    os.symlink(outside, docs / "link-to-outside.txt")
    os.symlink(docs / "sub" / "real.txt", docs / "link-to-real.txt")


def test_symlink_loops_and_file_links_are_not_followed_at_start_up(harness: Harness) -> None:
    (harness.docs / "top.md").write_text("Top-level note about kettles.\n")
    make_symlinks(harness.docs)
    harness.start()
    state = harness.wait(lambda s: {"top.md", "sub/real.txt"} <= set(s))
    assert set(state) == {"top.md", "sub/real.txt"}
    assert set(harness.documents()) == {"top.md", "sub/real.txt"}
    assert harness.outcomes(Outcome.INDEXED) == Counter({"top.md": 1, "sub/real.txt": 1})


def test_symlinks_created_while_watching_are_not_followed(harness: Harness) -> None:
    harness.start()
    (harness.docs / "top.md").write_text("Top-level note about kettles.\n")
    make_symlinks(harness.docs)
    (harness.docs / "last.md").write_text("Written last, about teapots.\n")
    harness.wait(lambda s: {"top.md", "sub/real.txt", "last.md"} <= set(s))
    time.sleep(2)  # give a wrongly followed link every chance to show up
    harness.wait(lambda s: True)
    assert set(harness.documents()) == {"top.md", "sub/real.txt", "last.md"}


def replace_with_link(path: Path, target: Path) -> None:
    path.unlink()  # as `ln -sf` does it: the file goes, a link takes its name
    os.symlink(target, path)


def two_notes_indexed(harness: Harness, tmp_path: Path) -> Path:
    """note.txt and other.txt indexed by a running watcher; returns a text file outside the watched folder."""
    outside = tmp_path / "outside.txt"
    outside.write_text("Linked text about cormorants.\n")
    (harness.docs / "note.txt").write_text("Original text about herons.\n")
    (harness.docs / "other.txt").write_text("Another text about egrets.\n")
    harness.start()
    harness.wait(lambda s: {"note.txt", "other.txt"} <= set(s))
    return outside


def test_a_file_replaced_by_a_symlink_while_watching_leaves_the_index(harness: Harness, tmp_path: Path) -> None:
    outside = two_notes_indexed(harness, tmp_path)
    replace_with_link(harness.docs / "note.txt", outside)
    harness.wait(lambda s: set(s) == {"other.txt"}, timeout=10)  # events take well under a second


def test_a_file_replaced_by_a_symlink_while_stopped_leaves_the_index(harness: Harness, tmp_path: Path) -> None:
    outside = two_notes_indexed(harness, tmp_path)
    harness.stop()
    replace_with_link(harness.docs / "note.txt", outside)
    harness.start()
    assert set(harness.indexed()) == {"other.txt"}


# ----- folders moved in and out -----
def test_a_folder_moved_in_is_indexed_and_one_moved_out_is_removed(harness: Harness, tmp_path: Path) -> None:
    (harness.docs / "stays.md").write_text("This note stays, about lighthouses.\n")
    leaving = harness.docs / "leaving"
    (leaving / "inner").mkdir(parents=True)
    (leaving / "a.txt").write_text("Leaving soon: apricot orchards.\n")
    (leaving / "inner" / "b.md").write_text("Also leaving: barley fields.\n")
    harness.start()
    harness.wait(lambda s: set(s) == {"stays.md", "leaving/a.txt", "leaving/inner/b.md"})

    outside = tmp_path / "elsewhere"
    (outside / "arriving" / "nested").mkdir(parents=True)
    (outside / "arriving" / "c.txt").write_text("Arriving: cedar forests.\n")
    (outside / "arriving" / "nested" / "d.md").write_text("Arriving too: dune grasses.\n")
    os.rename(outside / "arriving", harness.docs / "arriving")
    state = harness.wait(lambda s: {"arriving/c.txt", "arriving/nested/d.md"} <= set(s))
    assert "cedar" in state["arriving/c.txt"] and "dune" in state["arriving/nested/d.md"]

    os.rename(leaving, outside / "left")
    state = harness.wait(lambda s: not any(p.startswith("leaving/") for p in s))
    assert set(state) == {"stays.md", "arriving/c.txt", "arriving/nested/d.md"}
    assert set(harness.documents()) == set(state)


# ----- restarts -----
def test_changes_made_while_stopped_are_picked_up_by_the_start_up_scan(harness: Harness) -> None:
    (harness.docs / "edited.md").write_text("Before: the ferry leaves at noon.\n")
    (harness.docs / "deleted.txt").write_text("Soon gone: the old pier.\n")
    (harness.docs / "kept.txt").write_text("Unchanged: the harbour wall.\n")
    (harness.docs / "folder").mkdir()
    (harness.docs / "folder" / "gone.md").write_text("A whole folder that will vanish.\n")
    harness.start()
    harness.wait(lambda s: len(s) == 4)
    harness.stop()

    (harness.docs / "edited.md").write_text("After: the ferry now leaves at dusk.\n")
    (harness.docs / "deleted.txt").unlink()
    shutil.rmtree(harness.docs / "folder")
    (harness.docs / "added.md").write_text("New while stopped: the lighthouse keeper.\n")
    (harness.docs / "later").mkdir()
    (harness.docs / "later" / "deep.txt").write_text("New folder while stopped: seagulls.\n")
    before = len(harness.results)

    harness.start()  # a new Watcher on the same index: its start-up scan must reconcile
    state = harness.indexed()  # no waiting: the scan has finished when start() returns
    assert set(state) == {"edited.md", "kept.txt", "added.md", "later/deep.txt"}
    assert "dusk" in state["edited.md"] and "noon" not in state["edited.md"]
    assert harness.index.catalog.all_chunk_ids() == harness.index.vectors.ids()
    after = Counter((harness.rel(r.path), r.outcome) for r in harness.results[before:])
    assert after[("kept.txt", Outcome.UNCHANGED)] == 1
    assert after[("kept.txt", Outcome.INDEXED)] == 0
    assert after[("edited.md", Outcome.INDEXED)] == 1 and after[("added.md", Outcome.INDEXED)] == 1


# ----- files that cannot be indexed -----
def test_bad_files_are_recorded_with_reasons_and_the_rest_goes_on(harness: Harness) -> None:
    harness.start()
    (harness.docs / "good-before.md").write_text("A good note about otters.\n")
    (harness.docs / "empty.txt").write_bytes(b"")
    (harness.docs / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (harness.docs / "good-after.txt").write_text("Another good note about beavers.\n")
    harness.wait(lambda s: {"good-before.md", "good-after.txt"} <= set(s))
    documents = harness.wait(lambda d: {"empty.txt", "binary.txt"} <= set(d), state=harness.documents)
    assert documents["empty.txt"] == ("failed", "empty file (0 bytes)")
    assert documents["binary.txt"] == ("failed", "binary content, not text")
    assert documents["good-before.md"] == ("indexed", None) and documents["good-after.txt"] == ("indexed", None)


@pytest.mark.unprivileged  # as root, run with capabilities dropped (tests/conftest.py)
def test_an_unreadable_file_is_recorded_as_failed(harness: Harness) -> None:
    harness.start()
    secret = harness.docs / "secret.txt"
    secret.write_text("Nobody may read this.\n")
    harness.wait(lambda s: "secret.txt" in s)
    secret.chmod(0)
    (harness.docs / "fresh.txt").write_text("A fresh, readable note.\n")
    locked = harness.docs / "locked.md"
    locked.write_text("Locked before it was ever read.\n")
    locked.chmod(0)
    documents = harness.wait(lambda d: {"fresh.txt", "locked.md"} <= set(d), state=harness.documents)
    assert documents["locked.md"] == ("failed", "permission denied")
    assert documents["fresh.txt"] == ("indexed", None)
