"""Crash safety of `archivist ingest`: killed (SIGKILL) at each write step, in the middle of a multi-file run,
on a first ingest and on a re-ingest after edits, the catalog is left at the old or the new version of every
file, never between; and the next normal run makes the index match the disk exactly: one document per file,
catalog chunk ids == Chroma ids, no duplicate chunks, every file's sentence found once, nothing stale.

Each CLI run loads the real embedding model (seconds of CPU), so the scenarios' runs are started together,
a few at a time, in a module fixture; the tests then check each scenario's recorded recorded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.factory import open_default_index
from rag.index.catalog import Catalog
from rag.search.retrieve import RetrievalSettings, search
from rag.settings import load_settings
from tests.conftest import subprocess_env
from tests.pdf_factory import text_pdf

pytestmark = pytest.mark.slow

PARALLEL_RUNS = 3  # CLI runs at once: each keeps about one core busy (imports, loading the model)

# One sentence per file and version, on unrelated topics, so a search for it finds its own chunk.
SENTENCES: dict[tuple[str, int], str] = {
    ("alpha.md", 1): "The Quillfeather lighthouse keeper painted the lamp room cobalt blue.",
    ("alpha.md", 2): "The Quillfeather lighthouse keeper fitted a brass lantern with a red lens.",
    ("bravo.txt", 1): "Brambleton bakery sells rye loaves only on Thursday mornings.",
    ("bravo.txt", 2): "Brambleton bakery now bakes sourdough at midnight for the night shift.",
    ("charlie.pdf", 1): "The Cindervale mine shipped nine hundred tonnes of copper ore in 2021.",
    ("charlie.pdf", 2): "The Cindervale mine closed its copper pit after the spring flood of 2023.",
    ("delta.txt", 1): "The Dunmorrow choir rehearses Handel oratorios in the old chapel.",
    ("echo.txt", 2): "The Emberwick ferry carries bicycles free of charge on Sundays.",
}
# What the folder holds at each version: the re-ingest edits three files, deletes one and adds one.
FILES = {
    1: ["alpha.md", "bravo.txt", "charlie.pdf", "delta.txt"],
    2: ["alpha.md", "bravo.txt", "charlie.pdf", "echo.txt"],
}


def filler(topic: str) -> str:
    """A paragraph long enough (about 110 tokens) that two of them never share a 200-token chunk."""
    return " ".join(
        f"{topic} note {n}: the committee reviewed the minutes, agreed the schedule and filed the papers."
        for n in range(1, 7)
    )


def content(name: str, version: int) -> bytes:
    """The bytes of `name` at `version`: its sentence sits between paragraphs that never change."""
    sentence = SENTENCES[(name, version)]
    middle = f"{sentence} {filler('Records')}"
    if name.endswith(".md"):
        return (
            f"# Alpha handbook\n\n## Harbour\n\n{filler('Harbour')}\n\n## Lamp\n\n{middle}\n\n"
            f"## Orchard\n\n{filler('Orchard')}\n"
        ).encode()
    if name.endswith(".pdf"):
        pages = [["Cindervale quarterly report.", "Prepared by the accounts office."],
                 [sentence, "The figures were checked twice.", "Costs were flat."],
                 ["Appendix: tables and figures."]]
        return text_pdf(pages)
    return f"{filler('Opening')}\n\n{middle}\n\n{filler('Closing')}\n".encode()


def write_version(docs: Path, version: int) -> None:
    for name in FILES[3 - version]:
        if name not in FILES[version]:
            (docs / name).unlink(missing_ok=True)
    for name in FILES[version]:
        (docs / name).write_bytes(content(name, version))


@dataclass(frozen=True)
class Scenario:
    step: str  # where the crashed run is killed
    nth: int  # ...the nth time the run reaches that step (each file reaches each step once)
    reingest: bool  # crash while re-ingesting an edited folder (old vectors exist) rather than a first ingest

    @property
    def crash_at(self) -> str:
        return f"{self.step}:{self.nth}"

    @property
    def id(self) -> str:
        return f"{'reingest' if self.reingest else 'first'}-{self.step}-{self.nth}"

    @property
    def version(self) -> int:
        """The version of the folder the crashed run was indexing."""
        return 2 if self.reingest else 1

    def allowed_after_crash(self) -> dict[str, set[int | None]]:
        """Which versions of each file the catalog may hold after the crash (None: not in the catalog).

        Files are committed one by one, in sorted order, so at a catalog step the files before the nth are
        at their new version and the rest at their old. The vectors of a batch of files go in together
        before the first of them commits, so at "before-vectors" the earlier files of the nth file's batch
        are still old; how many files a batch holds depends on how far parsing ran ahead."""
        order = FILES[self.version]
        old: dict[str, int | None] = {name: (1 if self.reingest and name in FILES[1] else None)
                                      for name in {*FILES[1], *order}}
        committed = self.nth if self.step == "after-catalog" else self.nth - 1
        surely = 0 if self.step == "before-vectors" else committed
        allowed: dict[str, set[int | None]] = {name: {version} for name, version in old.items()}
        for position, name in enumerate(order):
            if position < surely:
                allowed[name] = {self.version}
            elif position < committed:
                allowed[name] = {old[name], self.version}
        return allowed

    def matches(self, found: dict[str, int | str]) -> bool:
        allowed = self.allowed_after_crash()
        return set(found) <= set(allowed) and all(found.get(name) in versions for name, versions in allowed.items())


SCENARIOS = [
    Scenario("before-vectors", 2, reingest=False),
    Scenario("before-catalog", 3, reingest=False),  # vectors under a document id the catalog never learns
    Scenario("before-vectors", 3, reingest=True),
    Scenario("before-catalog", 2, reingest=True),  # the new vectors are in, the catalog still old
    Scenario("after-catalog", 2, reingest=True),  # the catalog is new, the old vectors not yet deleted
]


@dataclass
class Runs:
    """What happened to one scenario's folder: the crashed run, the catalog it left, the recovery run."""

    docs: Path
    data_dir: Path
    crashed: subprocess.CompletedProcess[str]
    after_crash: dict[str, int | str]  # file name -> version the catalog holds, or what is wrong with it
    recovered: subprocess.CompletedProcess[str]


_slots = threading.Semaphore(PARALLEL_RUNS)


def ingest(docs: Path, data_dir: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """`archivist ingest DOCS --json`, killed at `crash_at` if given."""
    with _slots:
        return subprocess.run(
            [*archivist(crash_at), "ingest", str(docs), "--data-dir", str(data_dir), "--json"],
            capture_output=True, text=True, timeout=600, env=subprocess_env(),
        )


def archivist(crash_at: str | None = None) -> list[str]:
    """The command line to run: the product's own, or the same wrapped to be killed at `crash_at`."""
    return [sys.executable, "-m", "tests.crashing_cli", crash_at] if crash_at else [sys.executable, "-m", "ui.cli"]


def catalog_versions(data_dir: Path) -> dict[str, int | str]:
    """File name -> the version of it the catalog holds, judged by content hash AND by chunk text."""
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        found: dict[str, int | str] = {}
        for document in catalog.documents():
            name = Path(document.path).name
            text = "\n".join(chunk.text for chunk in catalog.chunks_of(document.id))
            versions = [v for v in (1, 2) if (name, v) in SENTENCES]
            by_hash = [v for v in versions if document.content_hash == hashlib.sha256(content(name, v)).hexdigest()]
            by_text = [v for v in versions if SENTENCES[(name, v)] in text]
            if document.status == "indexed" and by_hash == by_text and len(by_hash) == 1:
                found[name] = by_hash[0]
            else:
                found[name] = f"between versions: status {document.status}, hash of {by_hash}, text of {by_text}"
        return found
    finally:
        catalog.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Runs]:
    """Every scenario's runs; scenarios proceed side by side, at most PARALLEL_RUNS processes at a time."""
    folders: dict[str, tuple[Path, Path]] = {}
    for scenario in SCENARIOS:
        docs = tmp_path_factory.mktemp(f"docs-{scenario.id}")
        write_version(docs, 1)
        folders[scenario.id] = (docs, tmp_path_factory.mktemp(f"data-{scenario.id}"))

    def scenario_runs(scenario: Scenario) -> Runs:
        docs, data_dir = folders[scenario.id]
        if scenario.reingest:  # start from the folder indexed once, normally, then edited
            first = ingest(docs, data_dir)
            assert first.returncode == 0, f"{scenario.id}: the first ingest failed: {first.stderr}"
            write_version(docs, 2)
        crashed = ingest(docs, data_dir, scenario.crash_at)
        after_crash = catalog_versions(data_dir)
        return Runs(docs, data_dir, crashed, after_crash, ingest(docs, data_dir))

    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        chains = {s.id: pool.submit(scenario_runs, s) for s in SCENARIOS}
        return {key: chain.result() for key, chain in chains.items()}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_the_crash_leaves_every_file_at_its_old_or_new_version(scenario: Scenario, runs: dict[str, Runs]) -> None:
    recorded = runs[scenario.id]
    assert recorded.crashed.returncode == -9, (  # SIGKILL, at the step asked for
        f"exit {recorded.crashed.returncode}; stderr: {recorded.crashed.stderr[-2000:]}"
    )
    assert recorded.crashed.stdout == ""  # killed before its report
    assert scenario.matches(recorded.after_crash), (recorded.after_crash, scenario.allowed_after_crash())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_the_next_run_makes_the_index_match_the_disk(scenario: Scenario, runs: dict[str, Runs]) -> None:
    recorded = runs[scenario.id]
    assert recorded.recovered.returncode == 0, recorded.recovered.stderr
    report = json.loads(recorded.recovered.stdout)
    names = FILES[scenario.version]
    done_before = sum(1 for name, v in recorded.after_crash.items() if v == scenario.version and name in names)
    # Files finished before the crash are not redone; the others are indexed now; the deleted file goes.
    assert (report["indexed"], report["unchanged"]) == (len(names) - done_before, done_before)
    assert report["removed"] == (1 if scenario.reingest else 0)
    assert report["failed"] == [] and report["skipped"] == []

    # The catalog: exactly one indexed document per file on disk, each at its current content.
    assert catalog_versions(recorded.data_dir) == dict.fromkeys(names, scenario.version)
    settings = load_settings(data_dir=recorded.data_dir)
    index = open_default_index(settings)  # opened the way every face opens it: same collection, same model
    try:
        catalog = index.catalog
        paths = {document.path for document in catalog.documents()}
        assert paths == {str(recorded.docs / name) for name in names}
        # No duplicate chunks: ordinals 0..n-1 once each, no chunk text twice in one document.
        for document in catalog.documents():
            chunks = catalog.chunks_of(document.id)
            assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks))), document.path
            assert len({chunk.text for chunk in chunks}) == len(chunks), document.path
        # The vectors: one per catalog chunk, no orphans (the crashed run's) and none missing.
        chunk_ids = catalog.all_chunk_ids()
        assert chunk_ids and index.vectors.ids() == chunk_ids
        assert index.vectors.count() == len(chunk_ids)

        # Searching: each file's sentence is in exactly one chunk, of its file; its vector is reachable (dense
        # search, uncapped, returns every chunk) and the product's own search puts it in the top three.
        everything = len(chunk_ids)
        uncapped = RetrievalSettings(per_document=everything)
        for name in names:
            sentence = SENTENCES[(name, scenario.version)]
            hits = search(index, sentence, everything, mode="dense", tuning=uncapped)
            assert len(hits) == everything  # every vector is reachable through the catalog
            holding = [hit for hit in hits if sentence in hit.text]
            assert [Path(hit.path).name for hit in holding] == [name], f"{sentence!r} found as {holding}"
            best = search(index, sentence, 3)
            assert any(sentence in hit.text and Path(hit.path).name == name for hit in best), (sentence, best)
        texts = [hit.text for hit in search(index, "anything", everything, mode="dense", tuning=uncapped)]
        gone = [sentence for (_, version), sentence in SENTENCES.items() if version != scenario.version]
        assert not [sentence for sentence in gone for text in texts if sentence in text]
    finally:
        index.close()


def test_a_large_file_killed_mid_way_keeps_its_parts_and_the_next_run_finishes_it(tmp_path: Path) -> None:
    """Issue 12, item 7: a file of many passages commits in parts; SIGKILL after the second part leaves those
    parts in the catalog and in Chroma (marked `partial`), and the next run embeds only the rest."""
    docs, data_dir = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    paragraphs = [f"Section {n}. {filler(f'Topic{n}')}" for n in range(60)]
    (docs / "large.txt").write_text("\n\n".join(paragraphs) + "\n")
    env = {"ARCHIVIST_COMMIT_CHUNKS": "20"}

    def run(crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*archivist(crash_at), "ingest", str(docs), "--data-dir", str(data_dir), "--json"],
            capture_output=True, text=True, timeout=600, env=subprocess_env(**env),
        )

    crashed = run("after-part:2")
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    catalog = Catalog(data_dir / "catalog.sqlite3")
    try:
        [document] = catalog.documents()
        assert document.status == "partial" and catalog.chunk_count() == 40
    finally:
        catalog.close()

    finished = run()
    assert finished.returncode == 0, finished.stderr[-2000:]
    report = json.loads(finished.stdout)
    index = open_default_index(load_settings(data_dir=data_dir))
    try:
        [document] = index.catalog.documents()
        chunks = index.catalog.chunks_of(document.id)
        assert document.status == "indexed" and len(chunks) > 40
        assert report["indexed"] == 1 and report["embedded_texts"] == len(chunks) - 40  # the 40 were kept
        assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
        assert len({chunk.text for chunk in chunks}) == len(chunks)
        assert index.vectors.ids() == index.catalog.all_chunk_ids()
        text = "\n".join(chunk.text for chunk in chunks)
        assert all(f"Section {n}." in text for n in range(60))
    finally:
        index.close()
