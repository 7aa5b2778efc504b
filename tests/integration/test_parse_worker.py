"""Files read in the separate reading process (ingest.parsers.worker): a file that runs over the time or
memory limit, or whose reader is killed, fails alone with a reason; the next file still reads; no
process is left behind."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.document import MemoryPageTextCache
from ingest.parsers import worker
from ingest.parsers.worker import Limits, ParserProcess, parse_isolated
from ingest.pipeline import Ingester, Outcome
from rag.errors import ParseOutOfMemory, ParserCrashed, ParseTimeout, TooComplex
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.settings import Settings
from tests import bombs
from tests.fakes import HashingEmbedder, InMemoryVectorStore
from tests.pdf_factory import text_pdf

# About 900,000 tags: under the HTML parser's cap, yet it takes BeautifulSoup about a minute and close
# to a GB to read, so a tight limit stops it on any machine.
SLOW_HTML = bombs.wide_html(450_000)


def _children() -> set[int]:
    """The reading processes this test process has running."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"ingest.parsers.worker" in command:
            found.add(int(entry.name))
    return found


@pytest.fixture
def reader() -> Iterator[ParserProcess]:
    process = ParserProcess(Limits(timeout_s=120, memory_mb=1536))
    yield process
    process.close()
    assert process.pid is None


@pytest.fixture(autouse=True)
def no_reader_left_behind() -> Iterator[None]:
    yield
    worker.shutdown()
    assert _children() == set()


def test_a_small_file_reads_in_the_reading_process(reader: ParserProcess) -> None:
    document = reader.parse(b"Plain words.", "text")
    assert document.text == "Plain words."
    assert reader.pid is not None and reader.pid != os.getpid()
    reader.parse(b"More words.", "text")
    assert reader.started == 1  # reused, not started per file


def test_a_file_over_the_time_limit_fails_alone_and_the_next_one_reads() -> None:
    reader = ParserProcess(Limits(timeout_s=0.5, memory_mb=1536))
    try:
        first = reader.pid
        with pytest.raises(ParseTimeout, match=r"took longer than 0.5 s to read; raise ARCHIVIST_PARSE_TIMEOUT_S"):
            reader.parse(SLOW_HTML, "html")
        assert first is None and reader.pid is None  # the stopped reader is gone
        assert reader.parse(b"Next file.", "text").text == "Next file."
        assert reader.started == 2
    finally:
        reader.close()


def test_a_file_over_the_memory_limit_fails_alone_and_the_next_one_reads() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # At its limit the reader may raise MemoryError, or churn on failing allocations until the deadline:
    # either way the reason is memory.
    reader = ParserProcess(Limits(timeout_s=60, memory_mb=512))
    try:
        with pytest.raises(ParseOutOfMemory, match=r"needed more than 512 MB of memory to read"):
            reader.parse(SLOW_HTML, "html")
        assert reader.parse(b"Next file.", "text").text == "Next file."
    finally:
        reader.close()
    # The parent only built and sent the file (a few MB); the child did the rest.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


def test_a_library_out_of_memory_is_reported_as_memory_not_as_a_damaged_file() -> None:
    # lxml fails an allocation with "unknown error", not MemoryError; the reader's peak tells the truth.
    body = (b"<w:p><w:r><w:t>" + b"word " * 400 + b"</w:t></w:r></w:p>") * 28_000  # 54 MB: within the caps
    reader = ParserProcess(Limits(timeout_s=60, memory_mb=256))
    try:
        with pytest.raises(ParseOutOfMemory, match=r"needed more than 256 MB"):
            reader.parse(bombs.docx(body), "docx")
        assert reader.parse(b"<p>Next file.</p>", "html").text == "Next file."
    finally:
        reader.close()


def test_a_reader_killed_from_outside_fails_only_that_file(reader: ParserProcess) -> None:
    reader.parse(b"warm up", "text")
    pid = reader.pid
    assert pid is not None
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        with pytest.raises(ParserCrashed, match=r"was killed \(SIGKILL\)"):
            reader.parse(SLOW_HTML, "html")
    finally:
        killer.cancel()
    assert reader.parse(b"Next file.", "text").text == "Next file."


def test_a_docx_bomb_fails_in_a_moment_without_touching_the_parent(reader: ParserProcess) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TooComplex, match="expands to 432 MB"):
        reader.parse(bombs.docx_bomb(432), "docx")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024


def test_an_edited_pdf_reextracts_only_its_changed_pages_through_the_reader(reader: ParserProcess) -> None:
    cache = MemoryPageTextCache()
    first = reader.parse(text_pdf([["Page one."], ["Page two."]]), "pdf", page_cache=cache)
    assert len(cache.entries) == 2 and cache.hits == 0
    edited = reader.parse(text_pdf([["Page one."], ["Page two, edited."]]), "pdf", page_cache=cache)
    assert cache.hits == 1 and len(cache.entries) == 3  # page 1 from the cache, page 2 read again
    assert first.blocks[0] == edited.blocks[0]
    assert edited.blocks[1].text == "Page two, edited."


def test_an_idle_reader_leaves_and_a_new_one_takes_the_next_file() -> None:
    reader = ParserProcess(Limits(timeout_s=120, memory_mb=1536), idle_exit_s=0.2)
    try:
        reader.parse(b"one", "text")
        pid = reader.pid
        assert pid is not None
        for _ in range(100):
            if reader.pid is None:
                break
            time.sleep(0.1)
        assert reader.pid is None
        assert reader.parse(b"two", "text").text == "two"
        assert reader.started == 2
    finally:
        reader.close()


def test_isolation_can_be_turned_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, parse_isolation=False)
    assert parse_isolated(b"<p>In process.</p>", "html", settings).text == "In process."
    assert _children() == set()


def test_small_plain_text_is_read_in_process_and_the_rest_in_the_reader(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert parse_isolated(b"A short note.", "text", settings).text == "A short note."
    assert _children() == set()  # not worth a round trip: plain text cannot expand
    assert parse_isolated(b"# A short note", "markdown", settings).blocks[0].headings == ("A short note",)
    assert len(_children()) == 1


def test_the_pipeline_fails_a_bomb_and_indexes_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.docx").write_bytes(bombs.docx_bomb(300))
    (docs / "deep.html").write_bytes(bombs.nested_html(1_000_000))
    (docs / "slow.html").write_bytes(SLOW_HTML)
    (docs / "notes.txt").write_text("An ordinary note about the garden.")
    settings = Settings(data_dir=tmp_path / "data", parse_timeout_s=1)
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
    try:
        report = Ingester(index, settings).ingest_paths([docs])
    finally:
        index.close()
    outcomes = {Path(result.path).name: (result.outcome, result.reason) for result in report.results}
    assert outcomes["notes.txt"][0] == Outcome.INDEXED
    assert outcomes["bomb.docx"] == (Outcome.FAILED, "too complex to read: its text expands to 300 MB (limit 64 MB)")
    assert outcomes["deep.html"] == (Outcome.FAILED, "too complex to read: 2,000,004 tags (limit 1,000,000)")
    assert outcomes["slow.html"] == (
        Outcome.FAILED,
        "took longer than 1 s to read; raise ARCHIVIST_PARSE_TIMEOUT_S if it is expected to",
    )


def test_closing_does_not_wait_for_a_slow_file() -> None:
    reader = ParserProcess(Limits(timeout_s=600, memory_mb=1536))
    reader.parse(b"warm up", "text")
    failures: list[Exception] = []

    def read_slow_file() -> None:
        try:
            reader.parse(SLOW_HTML, "html")
        except Exception as error:
            failures.append(error)

    thread = threading.Thread(target=read_slow_file)
    thread.start()
    time.sleep(0.5)  # let it start the slow file
    reader.close()  # at exit, or when the settings change: must not wait out the time limit
    thread.join(30)
    assert not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], ParserCrashed)
    assert reader.pid is None


def test_the_reader_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from ingest.parsers.worker import Limits, ParserProcess\n"
        "reader = ParserProcess(Limits(timeout_s=60, memory_mb=1536))\n"
        "reader.parse(b'<p>x</p>', 'html')\n"
        "print(reader.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert Path(f"/proc/{child}").exists()
        parent.kill()  # no atexit, no close(): only the child's own watch can end it
        parent.wait()
        for _ in range(100):
            if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists() or "Z" in _state(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_the_pipeline_reads_an_edited_pdfs_unchanged_pages_from_the_catalog(tmp_path: Path) -> None:
    import sqlite3

    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = docs / "report.pdf"
    pdf.write_bytes(text_pdf([["Page one about apples."], ["Page two about pears."]]))
    catalog_path = tmp_path / "catalog.sqlite3"
    index = Index(Catalog(catalog_path), InMemoryVectorStore(), HashingEmbedder())
    try:
        ingester = Ingester(index, Settings(data_dir=tmp_path / "data"))
        assert ingester.ingest_paths([docs]).results[0].outcome == Outcome.INDEXED
        with sqlite3.connect(catalog_path) as db:
            keys = [row[0] for row in db.execute("SELECT key FROM page_text")]
        assert len(keys) == 2  # stored by the parent, from what the reading process sent back
        for key in keys:  # mark what the cache holds: a page read from it shows the mark
            index.catalog.put(key, ["From the cache."])
        pdf.write_bytes(text_pdf([["Page one about apples."], ["Page two about plums."]]))
        assert ingester.ingest_paths([docs]).results[0].outcome == Outcome.INDEXED
        document = index.catalog.document_by_path(str(pdf))
        assert document is not None
        texts = " ".join(chunk.text for chunk in index.catalog.chunks_of(document.id))
    finally:
        index.close()
    assert "From the cache." in texts and "plums" in texts and "apples" not in texts


def test_new_limits_from_the_settings_replace_the_reader(tmp_path: Path) -> None:
    parse_isolated(b"<p>one</p>", "html", Settings(data_dir=tmp_path, parse_timeout_s=100))
    first = _children()
    parse_isolated(b"<p>two</p>", "html", Settings(data_dir=tmp_path, parse_timeout_s=101))
    second = _children()
    assert len(first) == len(second) == 1 and first != second
