"""One writer, many readers: `archivist watch` owns the data folder; a second writer is refused, naming the
owner; `search`, `status` and `ask` from other processes work alongside it and see its new writes; SIGTERM
stops it cleanly and frees the folder for the next writer.

The tests share one watcher (a module fixture) and run in file order; the last one stops it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from rag.factory import open_default_index
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.search.retrieve import search
from rag.settings import load_settings
from tests.conftest import subprocess_env
from tests.ollama_standin import OllamaStandIn
from tests.pdf_factory import text_pdf

pytestmark = pytest.mark.slow

FIRST = "The Halvard observatory logs every comet sighting in a leather-bound register."
# Added while readers query: (file name, its distinctive sentence).
NEW_FILES = [
    ("tides.txt", "Tide tables for Porthkennack are pinned to the harbourmaster's door each Monday."),
    ("orchard.pdf", "The Wexcombe orchard grafts medlar scions onto hawthorn rootstock."),
]
# Written while a reader opened in this process is looking.
LATE = "The Ravensmoor clocktower chimes thirteen times at the spring equinox."
LATER = "The Skerryvore lighthouse lamp was first lit by a keeper named Alan."


def file_bytes(name: str, sentence: str) -> bytes:
    if name.endswith(".pdf"):
        return text_pdf([["Orchard notes."], [sentence]])
    return f"{sentence}\n".encode()


def archivist(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, env=env or subprocess_env(),
    )


def indexed_names(data_dir: Path) -> set[str]:
    """Names of the indexed documents, read straight from the catalog (SQLite, safe across processes)."""
    if not (data_dir / "catalog.sqlite3").exists():
        return set()
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        return {Path(d.path).name for d in catalog.documents() if d.status == "indexed"}
    finally:
        catalog.close()


def wait_until_indexed(data_dir: Path, names: set[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not names <= indexed_names(data_dir):
        assert time.monotonic() < deadline, f"never indexed: {sorted(names - indexed_names(data_dir))}"
        time.sleep(0.3)


@dataclass
class Watched:
    docs: Path
    data_dir: Path
    process: subprocess.Popen[str]
    log: Path  # the watcher's standard error

    def stderr(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    docs, data_dir = tmp_path_factory.mktemp("docs"), tmp_path_factory.mktemp("data")
    (docs / "first.md").write_text(f"# Observatory\n\n{FIRST}\n")
    log = tmp_path_factory.mktemp("logs") / "watch.stderr"
    handle: IO[str] = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "watch", str(docs), "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=handle, text=True, env=subprocess_env(), start_new_session=True,
    )
    try:
        wait_until_indexed(data_dir, {"first.md"})
        yield Watched(docs, data_dir, process, log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        handle.close()


def test_a_second_writer_is_refused_naming_the_owner(watched: Watched) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        second_watch = pool.submit(archivist, "watch", str(watched.docs), data_dir=watched.data_dir)
        second_ingest = pool.submit(archivist, "ingest", str(watched.docs), "--json", data_dir=watched.data_dir)
        refusals = {"watch": second_watch.result(), "ingest": second_ingest.result()}
    for command, result in refusals.items():
        assert result.returncode != 0, f"a second `{command}` was allowed to write"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"pid {watched.process.pid}" in lines[0], lines[0]
        assert result.stdout == ""
    assert watched.process.poll() is None  # the owner is untouched


def test_search_status_and_ask_work_from_other_processes(watched: Watched) -> None:
    with OllamaStandIn() as server, ThreadPoolExecutor(max_workers=3) as pool:
        searched = pool.submit(archivist, "search", "comet sightings register", "--k", "3", "--json",
                               data_dir=watched.data_dir)
        status = pool.submit(archivist, "status", "--json", data_dir=watched.data_dir)
        asked = pool.submit(archivist, "ask", "Where are comet sightings logged?", "--effort", "low", "--json",
                            data_dir=watched.data_dir, env=subprocess_env(OLLAMA_HOST=server.url))
        results = {"search": searched.result(), "status": status.result(), "ask": asked.result()}
    for command, result in results.items():
        assert result.returncode == 0 and "Traceback" not in result.stderr, f"{command}: {result.stderr}"
    hits = json.loads(results["search"].stdout)
    assert Path(hits[0]["path"]).name == "first.md" and FIRST in hits[0]["text"]
    counts = json.loads(results["status"].stdout)
    assert counts["documents"]["indexed"] == 1 and counts["chunks"] >= 1
    answer = json.loads(results["ask"].stdout)
    assert [Path(c["path"]).name for c in answer["citations"]] == ["first.md"]
    assert answer["citations"][0]["quote"] == FIRST


@dataclass
class StatusLoop:
    """`archivist status --json` over and over from another process, recording anything that goes wrong."""

    data_dir: Path
    stop: threading.Event = field(default_factory=threading.Event)
    runs: int = 0
    indexed: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        while not self.stop.is_set():
            result = archivist("status", "--json", data_dir=self.data_dir)
            self.runs += 1
            if result.returncode != 0 or result.stderr.strip():
                self.errors.append(f"exit {result.returncode}: {result.stderr}")
            else:
                self.indexed.append(json.loads(result.stdout)["documents"]["indexed"])
            self.stop.wait(1.0)  # each run costs about a second of CPU: leave the cores to the writer and searches


def search_until_found(data_dir: Path, name: str, sentence: str, timeout: float = 60.0) -> list[str]:
    """Run `archivist search` for the sentence until a hit in `name` holds it; returns any failed runs."""
    errors: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = archivist("search", sentence, "--k", "3", "--json", data_dir=data_dir)
        if result.returncode != 0 or "Traceback" in result.stderr:
            errors.append(f"exit {result.returncode}: {result.stderr}")
            continue
        if any(Path(hit["path"]).name == name and sentence in hit["text"] for hit in json.loads(result.stdout)):
            return errors
        time.sleep(0.5)
    raise AssertionError(f"{name} never became findable by `archivist search` in {timeout:g} s; errors: {errors}")


def test_readers_in_other_processes_see_new_writes(watched: Watched) -> None:
    loop = StatusLoop(watched.data_dir)
    looping = threading.Thread(target=loop.run, name="status-loop")
    looping.start()
    try:
        with ThreadPoolExecutor(max_workers=len(NEW_FILES)) as pool:
            searches = []
            for name, sentence in NEW_FILES:  # each file is written while the readers of earlier ones run
                (watched.docs / name).write_bytes(file_bytes(name, sentence))
                searches.append(pool.submit(search_until_found, watched.data_dir, name, sentence))
                time.sleep(1.0)
            search_errors = [error for done in searches for error in done.result()]
        wait_until_indexed(watched.data_dir, {name for name, _ in NEW_FILES})
        runs, deadline = loop.runs, time.monotonic() + 60
        while loop.runs < runs + 2:  # at least one whole status run after the last write
            assert time.monotonic() < deadline and looping.is_alive(), "the status loop stalled"
            time.sleep(0.1)
    finally:
        loop.stop.set()
        looping.join(60)
    assert search_errors == []
    assert loop.errors == [] and loop.runs >= 2
    assert loop.indexed == sorted(loop.indexed), "a reader saw the index shrink while files were only added"
    assert loop.indexed[-1] == 1 + len(NEW_FILES)


@dataclass
class Reader:
    """An index opened in this process the way every face opens it (the read-only page among them)."""

    index: Index

    def wait_for(self, path: Path, timeout: float = 60.0) -> set[str]:
        """Wait until the catalog and Chroma's id list (both read from SQLite) hold the file; its chunk ids."""
        deadline = time.monotonic() + timeout
        while True:
            document = self.index.catalog.document_by_path(str(path))
            ids = {chunk.id for chunk in self.index.catalog.chunks_of(document.id)} if document else set()
            if ids and ids <= self.index.vectors.ids():
                return ids
            assert time.monotonic() < deadline, f"the watcher never indexed {path.name}"
            time.sleep(0.3)


@pytest.fixture
def reader(watched: Watched) -> Iterator[Reader]:
    index = open_default_index(load_settings(data_dir=watched.data_dir))
    try:
        # A reader that has answered before the writes, as a long-lived page has.
        assert Path(search(index, FIRST, 1, mode="dense")[0].path).name == "first.md"
        yield Reader(index)
    finally:
        index.close()


def test_a_reader_opened_before_the_writes_finds_them(watched: Watched, reader: Reader) -> None:
    (watched.docs / "late.md").write_text(f"# Clocktower\n\n{LATE}\n")
    reader.wait_for(watched.docs / "late.md")
    deadline = time.monotonic() + 15
    while not any(LATE in hit.text for hit in search(reader.index, LATE, 5)):
        assert time.monotonic() < deadline, "the product's (hybrid) search in this reader never found late.md"
        time.sleep(0.5)


def test_a_reader_opened_before_the_writes_sees_their_vectors(watched: Watched, reader: Reader) -> None:
    (watched.docs / "later.md").write_text(f"# Lighthouse\n\n{LATER}\n")
    ids = reader.wait_for(watched.docs / "later.md")
    deadline = time.monotonic() + 10  # the design note saw other processes' writes within a second
    while not any(LATER in hit.text for hit in search(reader.index, LATER, 5, mode="dense")):
        vector = reader.index.embedder.embed_query(LATER)
        nearest = {chunk_id for chunk_id, _ in reader.index.vectors.query(vector, 50)}
        assert time.monotonic() < deadline, (
            f"later.md is in the catalog and in Chroma's ids ({reader.index.vectors.count()} vectors), but this "
            f"reader's query() returns {len(nearest)} ids, none of later.md's {sorted(ids)}"
        )
        time.sleep(0.5)


def test_sigterm_stops_the_watcher_and_frees_the_folder(watched: Watched) -> None:
    watched.process.send_signal(signal.SIGTERM)
    assert watched.process.wait(timeout=60) == 0, watched.stderr()
    assert "Traceback" not in watched.stderr()
    result = archivist("ingest", str(watched.docs), "--json", data_dir=watched.data_dir)  # the lock is free
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    files = sorted(path.name for path in watched.docs.iterdir())
    # Everything the watcher was shown is in the index already: nothing lost, nothing to redo.
    assert (report["indexed"], report["unchanged"], report["removed"]) == (0, len(files), 0), (files, report)
