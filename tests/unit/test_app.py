"""The page's logic through Streamlit's AppTest, with a service made of in-memory fakes (fast, exact)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.pipeline import Ingester
from rag.errors import LLMResponseError, LLMUnavailable
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.index.lock import WriterLock
from rag.settings import load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedChat
from ui import bootstrap, library
from ui.app import link_citations, plain
from ui.safe_markdown import safe
from ui.service import ArchivistService, take_writer_lock

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
FACT = "The Zorblax reactor runs at 42 kelvin."
QUESTION = "How cold does the Zorblax reactor run?"
DOWN = (
    "Ollama is not reachable at http://127.0.0.1:9. Start it with `ollama serve` "
    "(or set OLLAMA_HOST to where it runs), and `ollama pull gpt-oss:20b` if you have not yet."
)

ServiceFactory = Callable[..., ArchivistService]


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Builds a service on fakes, optionally with `docs` ({file name: text}) indexed, and injects it."""
    made: list[ArchivistService] = []

    def make(
        docs: dict[str, str] | None = None, chat: ScriptedChat | None = None, watch: bool = False
    ) -> ArchivistService:
        # Hashing vectors are not semantic: the "nothing relevant" gate would judge them by chance, so it is off.
        settings = load_settings(data_dir=tmp_path / "data", min_relevance=0.0)
        index = Index(Catalog(settings.data_dir / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder())
        folder = tmp_path / "docs"
        folder.mkdir(exist_ok=True)
        for name, text in (docs or {}).items():
            (folder / name).write_text(text, encoding="utf-8")
        lock = WriterLock(settings.data_dir).acquire() if watch else None
        if docs and not watch:
            Ingester(index, settings).ingest_paths([folder])
        service = ArchivistService(settings, index, chat or ScriptedChat(), [folder] if watch else [], lock=lock,
                                   quiet_seconds=0.05)
        made.append(service.start())
        bootstrap.inject(service)
        return service

    yield make
    bootstrap.inject(None)
    for service in made:
        service.close()


def run_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def markdown_text(at: AppTest) -> str:
    return "\n".join(element.value for element in at.markdown)


def test_empty_index_tells_how_to_add_documents(make_service: ServiceFactory) -> None:
    make_service()

    at = run_page()

    assert at.title[0].value == "Archivist"
    assert any("archivist ui ~/Documents" in info.value and "make run DOCS=~/Documents" in info.value
               for info in at.info)
    assert "**Documents indexed:** 0  \n**Failed:** 0 · **Skipped:** 0  \n**Chunks:** 0" in markdown_text(at)
    assert any(re.search(r"Connections off this machine refused since start: \*\*\d+\*\*", caption.value)
               for caption in at.caption)
    assert not at.error


def test_question_is_answered_with_linked_citation_and_source(make_service: ServiceFactory) -> None:
    chat = ScriptedChat()
    chat.enqueue(f"{FACT} [1]", thinking="Source one states the temperature.")
    make_service({"reactor.md": f"{FACT} It was built in 1999.\n"}, chat)
    at = run_page()
    assert not at.info  # something is indexed: no hint

    at.chat_input[0].set_value(QUESTION).run()

    assert not at.exception and not at.error
    page = markdown_text(at)
    assert "The Zorblax reactor runs at 42 kelvin. [\\[1\\]](#turn-0-source-1)" in page
    assert '<a id="turn-0-source-1"></a>**\\[1\\] reactor.md** — p. 1' in page
    assert f"> “{FACT}”" in page  # the supporting quote
    assert [e.label for e in at.expander] == ["Reasoning", "Passage"]
    assert "Source one states the temperature." in page
    assert chat.history[0][1] == "medium"  # the settings' default effort
    assert any(caption.value.endswith("reactor.md") for caption in at.caption)

    # Another run (a control changed) redraws the conversation from the session's history.
    at.sidebar.radio[0].set_value("high").run()
    assert "[\\[1\\]](#turn-0-source-1)" in markdown_text(at)
    chat.enqueue("When was the Zorblax reactor built?")  # the follow-up made standalone, at low effort
    chat.enqueue("Nothing else. [1]")
    at.chat_input[0].set_value("And the build year?").run()
    assert chat.history[1][1] == "low" and chat.history[1][0][-1]["content"].endswith("And the build year?")
    assert chat.history[2][1] == "high"
    assert chat.history[2][0][1] == {"role": "user", "content": QUESTION}  # the conversation so far
    assert any(caption.value == "Searched for: When was the Zorblax reactor built?" for caption in at.caption)
    assert "#turn-1-source-1" in markdown_text(at)


def test_llm_down_shows_the_fix_and_still_the_passages(make_service: ServiceFactory) -> None:
    chat = ScriptedChat()
    chat.enqueue("", error=LLMUnavailable(DOWN))
    make_service({"reactor.md": f"{FACT}\n"}, chat)
    at = run_page()

    at.chat_input[0].set_value(QUESTION).run()

    assert not at.exception
    assert [error.value for error in at.error] == [safe(DOWN)]
    assert "`http://127.0.0.1:9`. Start it with `ollama serve`" in at.error[0].value
    page = markdown_text(at)
    assert "**Top passages for your question (search only)**" in page
    assert plain(FACT) in page
    assert "reactor.md" in page and "score" in page


def test_an_error_mid_answer_replaces_the_unverified_text_with_the_passages(make_service: ServiceFactory) -> None:
    chat = ScriptedChat()
    chat.enqueue("Half an answer", thinking="Thinking.", error=LLMResponseError("Ollama reported an error: boom"))
    make_service({"reactor.md": f"{FACT}\n"}, chat)
    at = run_page()

    at.chat_input[0].set_value(QUESTION).run()

    assert [error.value for error in at.error] == [safe("Ollama reported an error: boom")]
    page = markdown_text(at)
    assert "Half an answer" not in page
    assert "**Top passages for your question (search only)**" in page


def test_watched_folder_is_indexed_in_the_background(make_service: ServiceFactory) -> None:
    service = make_service({"reactor.md": f"{FACT}\n", "photo.bmp": "not a document"}, watch=True)

    assert service.wait_until_ready(30)

    status = service.status()
    assert (status.indexed, status.skipped, status.indexing) == (1, 1, False)
    assert status.chunks == 1
    assert any("photo.bmp" in error for error in status.errors)
    assert [hit.path for hit in service.search("Zorblax reactor", 1)] == [str(service.roots[0] / "reactor.md")]


def test_a_held_lock_means_read_only_with_a_note_naming_the_owner(tmp_path: Path) -> None:
    with WriterLock(tmp_path):
        lock, note = take_writer_lock(tmp_path)
    assert lock is None
    assert note is not None and note.startswith("Read-only: ") and "pid" in note


def test_link_citations_links_only_valid_numbers_and_keeps_dollars_literal() -> None:
    text = "Revenue was $5 [1][3], up from $4 【2†L1-L2】 [1, 2]."
    assert link_citations(text, "t", {1, 2}) == (
        r"Revenue was \$5 [\[1\]](#t-source-1)\[3\], up from \$4 [\[2\]](#t-source-2) "
        r"[\[1\]](#t-source-1)[\[2\]](#t-source-2)."
    )


def test_uncited_sentences_are_flagged_with_the_closest_source_and_the_quote_is_highlighted(
    make_service: ServiceFactory,
) -> None:
    chat = ScriptedChat()
    chat.enqueue(f"{FACT} [1] It was built in 1999.")
    make_service({"reactor.md": f"It is in the hills. {FACT} It was built in 1999.\n"}, chat)
    at = run_page()

    at.chat_input[0].set_value(QUESTION).run()

    assert not at.exception and not at.error
    page = markdown_text(at)
    assert ":orange[:material/warning: **No citation:**] It was built in 1999." in page
    assert "Closest source: \\[1\\] reactor.md, p. 1 — “It was built in 1999.”" in page
    assert f"It is in the hills. :orange-background[{plain(FACT)}] It was built in 1999." in page


def test_a_question_nothing_answers_shows_the_nearest_passages_without_asking(make_service: ServiceFactory) -> None:
    chat = ScriptedChat()
    service = make_service({"reactor.md": f"{FACT}\n"}, chat)
    service.settings = service.settings.model_copy(update={"min_relevance": 0.999})
    at = run_page()

    at.chat_input[0].set_value("What is the capital of Mongolia?").run()

    assert not at.exception and not at.error
    assert chat.history == []
    page = markdown_text(at)
    assert "I could not find the answer in your documents." in page
    assert any("the model was not asked" in caption.value for caption in at.caption)
    assert plain(FACT) in page


def test_the_file_type_filter_limits_the_sources(make_service: ServiceFactory) -> None:
    chat = ScriptedChat()
    chat.enqueue("From the text file [1].")
    make_service({"reactor.md": f"{FACT}\n", "reactor.txt": "The Zorblax reactor log says 42 kelvin too.\n"}, chat)
    at = run_page()

    at.sidebar.multiselect[0].set_value(["text"]).run()
    at.chat_input[0].set_value(QUESTION).run()

    assert not at.exception and not at.error
    (messages, _effort), = chat.history
    sources = messages[-1]["content"]
    assert "reactor.txt" in sources and "reactor.md" not in sources


def library_script() -> None:
    from ui.library_page import render

    render()


def settings_script() -> None:
    from ui.settings_page import render

    render()


def test_the_library_lists_folders_and_documents_and_checks_the_index(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    service = make_service({"reactor.md": f"{FACT}\n", "empty.txt": ""}, watch=True)
    assert service.wait_until_ready(60)
    at = AppTest.from_function(library_script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception

    assert at.title[0].value == "Library"
    assert any(str(tmp_path / "docs") in element.value for element in at.markdown)
    table = at.dataframe[0].value
    assert set(table["file"]) == {"reactor.md", "empty.txt"}
    assert dict(zip(table["file"], table["status"], strict=True)) == {"reactor.md": "indexed", "empty.txt": "failed"}
    assert "empty" in table["reason"][list(table["file"]).index("empty.txt")]

    (tmp_path / "docs" / "reactor.md").unlink()
    service.pause_indexing()  # so the deletion waits for the check rather than the watcher
    next(button for button in at.button if button.label == "Check index").click().run()
    assert not at.exception, at.exception
    assert any("indexed but gone from disk" in expander.label for expander in at.expander)
    next(button for button in at.button if button.label == "Fix all").click().run()
    assert not at.exception, at.exception
    assert [d.name for d in library.documents(service)] == ["empty.txt"]
    service.resume_indexing()


def test_the_settings_page_saves_and_says_where_values_come_from(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVIST_EFFORT", "high")
    monkeypatch.setenv("ARCHIVIST_RETRIEVAL__PER_DOCUMENT", "2")
    service = make_service()
    at = AppTest.from_function(settings_script, default_timeout=60)
    at.run()
    assert not at.exception, at.exception

    model_box = next(box for box in at.text_input if box.label == "Model")
    model_box.set_value("gpt-oss:120b")
    next(button for button in at.button if button.label == "Save").click().run()
    assert not at.exception, at.exception
    assert service.settings.model == "gpt-oss:120b"
    sources = at.dataframe[0].value
    by_name = dict(zip(sources["setting"], sources["from"], strict=True))
    assert by_name["model"] == "saved here"
    assert by_name["effort"] == "environment variable"
    assert any("environment variable still decides" in warning.value for warning in at.warning)
    tuning = at.dataframe[1].value
    rows = {name: (value, source) for name, value, source in zip(tuning["setting"], tuning["value"], tuning["from"],
                                                                  strict=True)}
    assert rows["retrieval.per_document"] == ("2", "environment variable")
    assert rows["support.threshold"] == ("0.32", "default")


class DownChat(ScriptedChat):
    """A model whose server is not running: every check says so."""

    def check(self) -> None:
        raise LLMUnavailable(DOWN)


def test_a_banner_gives_the_fix_as_soon_as_the_llm_is_unreachable(make_service: ServiceFactory) -> None:
    make_service({"reactor.md": f"{FACT}\n"}, DownChat())
    at = run_page()

    assert [warning.value for warning in at.warning] == [
        f"{safe(DOWN)}\n\nMeanwhile questions are answered with the passages that match best (search only)."
    ]


LEAKS = ("![x](http://198.51.100.7/i.png) [more](http://198.51.100.7/l) <http://198.51.100.7/a> "
         "https://198.51.100.7/b <img src=http://198.51.100.7/r.png>")


def test_no_drawn_text_can_load_or_link_out(make_service: ServiceFactory) -> None:
    from tests.unit.test_safe_markdown import assert_inert

    chat = ScriptedChat()
    chat.enqueue(f"{FACT} [1] {LEAKS}", thinking=f"Thinking {LEAKS}")
    make_service({"reactor ![x](http:．198.51.100.7) <img src=x>.md": f"{FACT} {LEAKS}\n"}, chat)
    at = run_page()

    at.chat_input[0].set_value(QUESTION).run()

    assert not at.exception
    drawn = [e.value for e in [*at.markdown, *at.caption, *at.error, *at.warning, *at.info]]
    assert any("198.51.100.7/l" in text for text in drawn)  # the leaks were drawn, inertly
    for text in drawn:
        # Our own markup stays: the anchor the [n] links point at (an id, not a link), colours and icons.
        assert_inert(text.replace('<a id="turn-0-source-1"></a>', ""), own_directives=True)


class Slot:
    """Stands in for a Streamlit slot: records what it was asked to draw."""

    def __init__(self) -> None:
        self.drawn: list[str] = []

    def markdown(self, text: str) -> None:
        self.drawn.append(text)


def test_streamed_text_ends_showing_all_of_it_sanitised_without_the_cursor() -> None:
    from ui.app import StreamedText

    slot = Slot()
    streamed = StreamedText(slot, cursor=" ▌")  # type: ignore[arg-type]
    for piece in ["Hello ", "![x](http://198.51.100.7/i.png)", " **world**"] * 50:
        streamed.add(piece)
    streamed.finish()
    assert slot.drawn[0] == "Hello ▌"
    assert slot.drawn[-1] == safe(streamed.text) and not slot.drawn[-1].endswith("▌")
    assert all("](http" not in text for text in slot.drawn)


def test_a_question_whose_run_was_cut_short_stays_on_the_page(make_service: ServiceFactory) -> None:
    from ui.app import Turn

    chat = ScriptedChat()
    chat.enqueue(f"{FACT} [1]")
    make_service({"reactor.md": f"{FACT} It was built in 1999.\n"}, chat)
    at = run_page()
    # What a run preempted mid-answer leaves behind (a reconnecting browser, another question sent meanwhile):
    # the question is in the history, its answer never finished.
    at.session_state["history"] = [Turn(QUESTION)]
    at.run()
    assert not at.exception
    assert QUESTION in markdown_text(at)
    assert any("This answer was cut short" in warning.value for warning in at.warning)

    at.chat_input[0].set_value(QUESTION).run()  # asked again, it is answered, and the first stays marked
    history = at.session_state["history"]
    assert [turn.finished for turn in history] == [False, True]
    assert history[1].answer is not None and history[1].answer.citations
