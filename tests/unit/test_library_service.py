"""The Library and Settings pages' back end: ArchivistService with the real watcher on tmp folders, over
real SQLite and the in-memory fakes (vectors, hashing embedder, scripted chat)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingest.library import FailedFile, FolderStore
from ingest.pipeline import Outcome
from rag import factory
from rag.errors import ConfigError, FolderError, IndexLockedError
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.llm.chat import ChatModel
from rag.search.retrieve import search
from rag.settings import Settings, load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedChat
from ui import bootstrap, library
from ui.bootstrap import open_service
from ui.service import ArchivistService
from ui.settings_changes import save_changes, setting_rows

Maker = Callable[..., ArchivistService]


def eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.05)


def new_index(data_dir: Path) -> Index:
    return Index(Catalog(data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Maker]:
    made: list[ArchivistService] = []

    def make(roots: tuple[Path, ...] = (), lock: bool = True, **kwargs: object) -> ArchivistService:
        settings = load_settings(data_dir=tmp_path / "data")
        writer = WriterLock(settings.data_dir).acquire() if lock else None
        service = ArchivistService(settings, new_index(settings.data_dir), ScriptedChat(), roots, lock=writer,
                                   quiet_seconds=0.05, **kwargs)  # type: ignore[arg-type]
        made.append(service.start())
        assert service.wait_until_ready(30)
        return service

    yield make
    for service in made:
        service.resume_indexing()
        service.close()


def paths(service: ArchivistService) -> list[str]:
    return [document.path for document in service.index.catalog.documents()]


def folder_with(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


def test_adding_a_folder_saves_scans_and_watches_it(make_service: Maker, tmp_path: Path) -> None:
    service = make_service(lock=False)  # a page opened without folders reads only, until a folder is added
    assert service.watcher is None and service.lock is None
    docs = folder_with(tmp_path, "docs", {"quince.md": "Quinces ripen in October.\n"})

    assert library.add_folder(service, docs) == docs

    assert service.lock is not None and service.roots == (docs,)
    assert FolderStore(service.settings.data_dir).folders() == [docs]
    assert service.wait_until_ready(30)
    assert paths(service) == [str(docs / "quince.md")]
    (docs / "medlar.md").write_text("Medlars need frost.\n")  # watched from now on
    eventually(lambda: str(docs / "medlar.md") in paths(service))
    assert [folder.documents for folder in library.folders(service)] == [2]


def test_adding_a_second_folder_keeps_the_first_and_refusals_say_why(make_service: Maker, tmp_path: Path) -> None:
    first = folder_with(tmp_path, "first", {"a.md": "Alpha.\n"})
    service = make_service()
    library.add_folder(service, first)
    second = folder_with(tmp_path, "second", {"b.md": "Beta.\n"})
    library.add_folder(service, second)
    assert service.wait_until_ready(30)
    assert service.roots == (first, second)
    assert paths(service) == [str(first / "a.md"), str(second / "b.md")]

    (first / "inner").mkdir()
    for folder, reason in [(first, "already watched"), (first / "inner", "is inside"),
                           (first / "a.md", "not a folder"), (tmp_path / "nowhere", "does not exist")]:
        with pytest.raises(FolderError, match=reason):
            library.add_folder(service, folder)
    assert service.roots == (first, second)


def test_removing_a_folder_unwatches_it_and_forgets_its_documents(make_service: Maker, tmp_path: Path) -> None:
    keep = folder_with(tmp_path, "keep", {"k.md": "Kumquats stay.\n"})
    drop = folder_with(tmp_path, "drop", {"d.md": "Durians go.\n", "e.md": "Elderberries go.\n"})
    service = make_service()
    library.add_folder(service, keep)
    library.add_folder(service, drop)
    assert service.wait_until_ready(30) and len(paths(service)) == 3

    removed = library.remove_folder(service, drop)

    assert sorted(removed) == [str(drop / "d.md"), str(drop / "e.md")]
    assert paths(service) == [str(keep / "k.md")]
    assert service.index.vectors.ids() == service.index.catalog.all_chunk_ids()
    assert search(service.index, "durians elderberries", 5, mode="lexical") == []
    assert service.roots == (keep,) and service.watcher is not None and service.watcher.roots == [keep]
    assert FolderStore(service.settings.data_dir).folders() == [keep]
    with pytest.raises(FolderError, match="is not a watched folder"):
        library.remove_folder(service, drop)
    (keep / "l.md").write_text("Limes arrive.\n")  # the remaining folder is still watched
    eventually(lambda: str(keep / "l.md") in paths(service))


def test_a_folder_given_at_start_can_be_removed(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {"a.md": "Alpha.\n"})
    service = make_service(roots=(docs,))
    assert paths(service) == [str(docs / "a.md")]
    library.remove_folder(service, docs)
    assert paths(service) == [] and service.watcher is None and service.roots == ()


def test_changes_need_the_writer_lock(make_service: Maker, tmp_path: Path) -> None:
    service = make_service(lock=False)
    with WriterLock(service.settings.data_dir):
        with pytest.raises(IndexLockedError, match=r"^Another Archivist process \(pid"):
            library.add_folder(service, folder_with(tmp_path, "docs", {}))
        with pytest.raises(IndexLockedError):
            library.reset_index(service)
    assert FolderStore(service.settings.data_dir).folders() == []


def test_pause_holds_changes_until_resume(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {"a.md": "Alpha.\n"})
    service = make_service(roots=(docs,))

    service.pause_indexing()
    assert service.paused and service.status().paused
    (docs / "b.md").write_text("Beta arrives while paused.\n")
    eventually(lambda: service.status().pending == 1)
    assert str(docs / "b.md") not in paths(service)

    service.resume_indexing()
    assert not service.status().paused
    eventually(lambda: str(docs / "b.md") in paths(service))


def test_check_finds_real_problems_and_repair_fixes_them(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {
        "edited.md": "Short.\n", "gone.md": "Soon deleted.\n", "empty.txt": "", "twin-a.md": "Same words.\n",
        "twin-b.md": "Same words.\n", "fine.md": "Untouched.\n",
    })
    service = make_service(roots=(docs,))
    assert library.check_index(service).failed == (FailedFile(str(docs / "empty.txt"), "empty file (0 bytes)"),)
    service.pause_indexing()  # the watcher would otherwise fix everything below by itself
    (docs / "edited.md").write_text("A longer second version of the edited file.\n")
    (docs / "gone.md").unlink()
    (docs / "new.md").write_text("Written while indexing was paused.\n")
    (docs / "photo.bmp").write_text("BM")  # unsupported: never "unindexed"
    vectors = service.index.vectors
    fine = service.index.catalog.document_by_path(str(docs / "fine.md"))
    assert fine is not None
    vectors.delete([service.index.catalog.chunks_of(fine.id)[0].id])  # a catalogued chunk without its vector
    vectors.upsert(["orphan"], HashingEmbedder().embed(["orphan"]), [{"document_id": "none"}])

    check = library.check_index(service)

    assert check.stale == (str(docs / "edited.md"),)
    assert check.missing == (str(docs / "gone.md"),)
    assert check.failed == (FailedFile(str(docs / "empty.txt"), "empty file (0 bytes)"),)
    assert check.unindexed == (str(docs / "new.md"),)
    assert check.duplicates == ((str(docs / "twin-a.md"), str(docs / "twin-b.md")),)
    assert (check.orphan_vectors, check.missing_vectors, check.problems) == (1, 1, 6)

    repair = library.repair_index(service, check)  # runs although indexing is paused

    outcomes = {Path(result.path).name: result.outcome for result in repair.report.results}
    assert outcomes == {"edited.md": Outcome.INDEXED, "new.md": Outcome.INDEXED, "empty.txt": Outcome.FAILED}
    assert repair.removed == [str(docs / "gone.md")]
    assert (repair.orphan_vectors_removed, repair.missing_vectors_restored) == (1, 1)
    after = library.check_index(service)
    assert (after.problems, after.failed) == (1, check.failed)  # an empty file stays empty
    assert "longer second version" in search(service.index, "longer second version", 1)[0].text
    assert service.watcher is not None and service.watcher.roots == [docs]  # watching again


def test_check_sees_missing_files_outside_the_watched_folders(make_service: Maker, tmp_path: Path) -> None:
    service = make_service()
    loose = folder_with(tmp_path, "loose", {"a.md": "Ingested once by hand.\n"})
    from ingest.pipeline import Ingester

    Ingester(service.index, service.settings).ingest_paths([loose / "a.md"])
    assert library.check_index(service).ok
    (loose / "a.md").unlink()
    assert library.check_index(service).missing == (str(loose / "a.md"),)
    library.repair_index(service)
    assert paths(service) == []


def test_reset_empties_the_index_then_rescans(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {"a.md": "Apricots.\n", "b.md": "Bilberries.\n"})
    service = make_service(roots=(docs,))
    embedder = service.index.embedder
    assert isinstance(embedder, HashingEmbedder) and len(paths(service)) == 2
    service.pause_indexing()  # lets the test see the empty index before the rescan fills it again

    library.reset_index(service)

    assert paths(service) == [] and service.index.vectors.count() == 0 and service.index.catalog.chunk_count() == 0
    assert search(service.index, "apricots", 5, mode="lexical") == []
    embedder.embedded_texts.clear()
    service.resume_indexing()
    assert service.wait_until_ready(30)
    assert paths(service) == [str(docs / "a.md"), str(docs / "b.md")]
    assert service.index.vectors.ids() == service.index.catalog.all_chunk_ids()
    assert sorted(embedder.embedded_texts) == ["Apricots.", "Bilberries."]  # the cache went too


def test_documents_table_through_the_service(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {"a.md": "Alpha.\n", "photo.bmp": "BM"})
    service = make_service(roots=(docs,))
    table = {row.name: (row.status, row.chunks, row.reason) for row in library.documents(service)}
    assert table == {"a.md": ("indexed", 1, None), "photo.bmp": ("skipped", 0, "unsupported file type .bmp")}


def test_saved_settings_through_the_service(make_service: Maker, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Settings] = []

    def make_chat(settings: Settings) -> ChatModel:
        built.append(settings)
        return ScriptedChat()

    monkeypatch.setenv("ARCHIVIST_MODEL", "from-env")
    service = make_service(make_chat=make_chat)

    settings = save_changes(service, {"effort": "high", "model": "saved-model", "pdf_passwords": ["pw"]})

    assert settings.effort == "high" and service.settings.effort == "high"
    assert settings.model == "from-env"  # the environment still wins
    assert built == [settings]
    rows = {row.name: row for row in setting_rows(service)}
    assert (rows["effort"].value, rows["effort"].source) == ("high", "saved")
    assert (rows["model"].value, rows["model"].source) == ("from-env", "environment")
    assert (rows["num_ctx"].value, rows["num_ctx"].source) == (16384, "default")
    assert rows["pdf_passwords"].secret and rows["pdf_passwords"].value == ["pw"]
    assert [row.name for row in setting_rows(service)] == [
        "llm", "ollama_host", "openai_base_url", "openai_api_key", "model", "num_ctx", "effort", "pdf_passwords"
    ]
    with pytest.raises(ConfigError, match="num_ctx"):
        save_changes(service, {"num_ctx": 1})
    assert service.settings.num_ctx == 16384


def test_ui_paths_join_the_saved_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    saved = folder_with(tmp_path, "saved", {"s.md": "Saved before.\n"})
    FolderStore(data_dir).add(saved)
    monkeypatch.setattr(factory, "open_default_index", lambda settings: new_index(settings.data_dir))
    monkeypatch.setattr(factory, "make_chat", lambda settings: ScriptedChat())
    monkeypatch.setattr(bootstrap.atexit, "register", lambda function: function)
    given = tmp_path / "given"  # missing: made, as `archivist ui PATH` always has

    service = open_service(data_dir, [given, saved / "inner"])
    try:
        assert service.wait_until_ready(30)
        assert FolderStore(data_dir).folders() == [saved, given]
        assert service.roots == (saved, given) and service.lock is not None
        assert paths(service) == [str(saved / "s.md")]
    finally:
        service.close()
    again = open_service(data_dir, [])  # the next start watches the saved folders without arguments
    try:
        assert again.roots == (saved, given) and again.lock is not None
    finally:
        again.close()


def test_a_change_that_fails_still_leaves_the_folders_watched(make_service: Maker, tmp_path: Path) -> None:
    docs = folder_with(tmp_path, "docs", {"a.md": "Apples.\n"})
    service = make_service((docs,))
    before = service.watcher

    with pytest.raises(RuntimeError, match="the change failed"), service.rewatching():
        assert service.watcher is None and service.indexing  # stopped while the change runs
        raise RuntimeError("the change failed")

    assert service.watcher is not None and service.watcher is not before  # a new watcher, on the same folders
    assert service.wait_until_ready(30) and service.roots == (docs,)
    (docs / "b.md").write_text("Bananas.\n")
    eventually(lambda: str(docs / "b.md") in paths(service))
