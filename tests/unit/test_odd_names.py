"""File names that are not UTF-8, and failures inside the reader thread (issue 12, item 5)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from ingest.pipeline import Ingester, Outcome
from rag.errors import IngestAborted
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.index.paths import display_path, load_path, store_path
from rag.search.retrieve import search
from rag.settings import load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore


@pytest.mark.parametrize("path", [
    "/d/plain.txt", "/d/bad\udcff.txt", "/d/\udc80\udcff", "/d/\uf700\uf780\uf7ff.txt", "/d/\ud800x",
    "/d/\uf780\udcff\uf700", "/d/é☃\U0001f600.txt", "",
])
def test_stored_paths_are_valid_text_and_come_back(path: str) -> None:
    stored = store_path(path)
    stored.encode("utf-8")  # no lone surrogate left
    assert load_path(stored) == path


def test_the_mapping_is_injective_on_tricky_pairs() -> None:
    # a real private-use character must not collide with the byte it would stand for
    names = ["a\udcff", "a\uf7ff", "a\uf700\uf7ff", "a\uf700", "a\uf701", "a\ud800", "a\uf701\U000f0000"]
    assert len({store_path(name) for name in names}) == len(names)
    assert store_path("/d/a b.txt") == "/d/a b.txt"  # ordinary names are stored as they are


def test_display_shows_the_bad_byte_and_no_control_characters() -> None:
    assert display_path("/d/bad\udcff.txt") == "/d/bad\\xff.txt"
    assert display_path("/d/\x1b]52;c;aGk=\x07x") == "/d/\\x1b]52;c;aGk=\\x07x"
    display_path("/d/bad\udcff\ud800").encode("utf-8")


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(Catalog(tmp_path / "data" / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


def test_a_name_that_is_not_utf8_is_indexed_with_the_rest(index: Index, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha apples are red\n")
    bad = os.fsdecode(bytes(docs) + b"/bad\xff.txt")
    Path(bad).write_text("bravo bananas are yellow\n")
    (docs / "z.txt").write_text("zulu zebras are striped\n")
    ingester = Ingester(index, load_settings(data_dir=tmp_path / "data"))

    report = ingester.ingest_paths([docs])

    assert sorted(r.path for r in report.of(Outcome.INDEXED)) == sorted([str(docs / "a.txt"), bad, str(docs / "z.txt")])
    assert report.of(Outcome.FAILED) == []
    [hit] = search(index, "bananas yellow", 1)
    assert hit.path == bad and Path(hit.path).read_text().startswith("bravo")  # it opens again by that name
    assert {d.path for d in index.catalog.documents(under=str(docs))} >= {bad}
    json.dumps(report.to_json(), ensure_ascii=False)  # the CLI shows names through display_path
    # unchanged on a second run (found again by its name), and removable
    again = ingester.ingest_paths([docs])
    assert {r.outcome for r in again.results} == {Outcome.UNCHANGED}
    Path(bad).unlink()
    assert ingester.ingest_paths([docs]).removed == [bad]


def test_an_unexpected_error_fails_only_that_file(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (docs / name).write_text(f"text of {name}\n")
    ingester = Ingester(index, load_settings(data_dir=tmp_path / "data"))
    examine = ingester._examine

    def surprise(path: Path) -> object:
        if path.name == "b.txt":
            raise KeyError("a library's surprise")
        return examine(path)

    monkeypatch.setattr(ingester, "_examine", surprise)
    report = ingester.ingest_paths([docs])

    assert [r.path for r in report.of(Outcome.INDEXED)] == [str(docs / "a.txt"), str(docs / "c.txt")]
    [failed] = report.of(Outcome.FAILED)
    assert failed.path == str(docs / "b.txt") and "unexpected error" in (failed.reason or "")
    assert index.catalog.document_by_path(str(docs / "b.txt")).status == "failed"  # type: ignore[union-attr]


def test_a_reader_that_dies_ends_the_run_with_an_error(
    index: Index, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a.txt", "b.txt"):
        (docs / name).write_text(f"text of {name}\n")
    ingester = Ingester(index, load_settings(data_dir=tmp_path / "data"))
    calls = []

    def broken(*stopping: object, poll_s: float = 0.25) -> None:
        if threading.current_thread().name != "archivist-reader":
            return
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the pause flag could not be read")

    monkeypatch.setattr(ingester.control, "wait_while_paused", broken)
    with pytest.raises(IngestAborted, match="1 of 2 files"):
        ingester.ingest_paths([docs])
