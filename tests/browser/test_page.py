"""The real page in a real browser: `archivist ui DOCS` with the Ollama stand-in, driven by Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import FACT, Watch
from tests.ollama_standin import OllamaStandIn, ScriptedReply

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUESTION = "How cold does the Zorblax reactor run?"
INDEXING_TIMEOUT_MS = 120_000  # the first scan loads the embedding model
ANSWER_TIMEOUT_MS = 60_000
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def record_requests(page: Page) -> list[str]:
    urls: list[str] = []

    def remember(request: Request) -> None:
        urls.append(request.url)

    page.on("request", remember)
    return urls


def open_when_indexed(page: Page, url: str) -> None:
    """Open the page and wait for the sidebar to count the document (the status redraws itself)."""
    page.goto(url)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(re.compile(r"Documents indexed: [1-9]"))).to_be_visible(timeout=INDEXING_TIMEOUT_MS)
    expect(sidebar.get_by_text("indexing…")).to_have_count(0)
    # The end of the first scan redraws the whole page, so the main area's hint is gone too.
    expect(page.get_by_text("Indexing your documents")).to_have_count(0)


def ask(page: Page, question: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")


def assert_only_local(urls: list[str]) -> None:
    remote = [url for url in urls if urlsplit(url).scheme not in ("data", "blob", "about")
              and urlsplit(url).hostname not in LOCAL_HOSTS]
    assert urls and not remote, f"the page made requests off this machine: {remote}"


def test_question_is_answered_with_reasoning_and_cited_sources(
    watched: tuple[Page, Watch], app_url: str, standin: OllamaStandIn, artifacts: Path
) -> None:
    page, watch = watched
    open_when_indexed(page, app_url)
    # Slow enough to watch: the answer appears word by word behind a cursor before it is complete.
    standin.enqueue(ScriptedReply(thinking="Source one gives the temperature.", content=f"{FACT} [1]", delay_s=0.25))

    ask(page, QUESTION)

    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("▌", exact=False)).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer.get_by_text(FACT).first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer.get_by_text("▌", exact=False)).to_have_count(0)
    expect(answer.get_by_text("Sources")).to_be_visible()
    citation = answer.get_by_role("link", name="[1]")
    expect(citation).to_have_attribute("href", "#turn-0-source-1")
    expect(page.locator("#turn-0-source-1")).to_have_count(1)
    expect(answer.get_by_text("[1] zorblax-reactor.md — p. 1")).to_be_visible()
    expect(answer.get_by_text(f"“{FACT}”")).to_be_visible()
    answer.get_by_text("Reasoning").click()
    # In the viewport, not just visible: the expander animates open, and the screenshot should show it.
    expect(answer.get_by_text("Source one gives the temperature.")).to_be_in_viewport()
    assert standin.chat_requests[-1]["think"] == "medium"

    page.screenshot(path=str(artifacts / "answer.png"), full_page=True, animations="disabled")
    watch.assert_clean()  # nothing off this machine, and not one CSP violation in normal use
    # The server side too: its egress guard refused nothing, because nothing tried to leave.
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Connections off this machine refused since start: 0")).to_be_visible()


def test_the_supporting_sentence_is_highlighted_and_a_follow_up_uses_the_conversation(
    page: Page, app_url: str, standin: OllamaStandIn, artifacts: Path
) -> None:
    urls = record_requests(page)
    open_when_indexed(page, app_url)
    ask(page, QUESTION)
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

    answer.get_by_role("link", name="[1]").click()
    answer.get_by_text("Passage", exact=True).click()
    # The passage shows the sentence that supports the answer on a highlight, the rest of it plainly.
    highlight = answer.locator("span", has_text=FACT).filter(has_not_text="coolant").last
    expect(highlight).to_be_in_viewport()
    assert highlight.evaluate("element => getComputedStyle(element).backgroundColor") not in ("", "rgba(0, 0, 0, 0)")
    page.screenshot(path=str(artifacts / "citation-opened.png"), full_page=True, animations="disabled")

    asks_before = len(standin.chat_requests)
    ask(page, "And what is its coolant?")
    follow_up = page.get_by_test_id("stChatMessage").last
    expect(follow_up.get_by_text("Searched for:", exact=False)).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(follow_up.get_by_text("Sources")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    # The rewrite, then research mode's requests: the stand-in's gpt-oss searches once, then answers.
    rewrite, first, *rest = standin.chat_requests[asks_before:]
    assert rewrite["think"] == "low" and rewrite["messages"][-1]["content"].endswith("And what is its coolant?")
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user"]
    assert first["messages"][1]["content"] == QUESTION
    assert [m["role"] for m in rest[-1]["messages"]][-2:] == ["assistant", "tool"]
    page.screenshot(path=str(artifacts / "follow-up.png"), full_page=True, animations="disabled")
    assert_only_local(urls)


def test_a_pdf_source_shows_its_page_with_the_passage_marked_and_offers_the_file(
    watched: tuple[Page, Watch], app_url: str, artifacts: Path
) -> None:
    page, watch = watched
    open_when_indexed(page, app_url)
    ask(page, "How many litres of brine does the Quibble pump move an hour?")
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("[1] pump-manual.pdf — p. 2")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)

    answer.get_by_text("Show page 2").click()
    image = answer.get_by_role("img").last
    expect(image).to_be_visible(timeout=30_000)
    expect(answer.get_by_text("pump-manual.pdf, page 2 (the passage is marked)")).to_be_visible()
    assert image.evaluate("element => element.naturalWidth") > 300
    with page.expect_download() as started:
        answer.get_by_role("button", name="Download the original").click()
    download = started.value
    assert download.suggested_filename == "pump-manual.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    image.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "pdf-page.png"), full_page=True, animations="disabled")
    watch.assert_clean()


def test_ollama_down_shows_the_fix_and_the_passages(
    page: Page, app_url: str, standin: OllamaStandIn, artifacts: Path
) -> None:
    urls = record_requests(page)
    open_when_indexed(page, app_url)
    standin.stop()
    try:
        ask(page, QUESTION)

        answer = page.get_by_test_id("stChatMessage").last
        banner = answer.get_by_test_id("stAlertContentError")
        expect(banner).to_contain_text("ollama serve", timeout=ANSWER_TIMEOUT_MS)
        expect(banner).to_contain_text(standin.url)
        expect(answer.get_by_text("Top passages for your question (search only)")).to_be_visible()
        expect(answer.get_by_text(FACT, exact=False).first).to_be_visible()
        expect(answer.get_by_text("zorblax-reactor.md", exact=False).first).to_be_visible()
        expect(page.get_by_text("Traceback")).to_have_count(0)
        page.screenshot(path=str(artifacts / "ollama-down.png"), full_page=True, animations="disabled")
    finally:
        standin.start()  # same port: "Ollama restarted", for any test after this one
    assert_only_local(urls)


def test_sidebar_follows_the_watched_folder(page: Page, app_url: str, docs_dir: Path) -> None:
    open_when_indexed(page, app_url)
    count = int(re.search(r"Documents indexed: (\d+)", page.get_by_test_id("stSidebar").inner_text())[1])

    (docs_dir / "notes.txt").write_text("The Zorblax coolant pumps were replaced in 2021.\n", encoding="utf-8")

    # No reload: the status redraws itself while the watcher indexes the new file.
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(f"Documents indexed: {count + 1}")).to_be_visible(timeout=30_000)


def test_library_and_settings_pages(
    watched: tuple[Page, Watch], app_url: str, docs_dir: Path, artifacts: Path
) -> None:
    page, watch = watched
    open_when_indexed(page, app_url)

    page.get_by_test_id("stSidebarNav").get_by_text("Library").click()
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    expect(page.get_by_text(str(docs_dir))).to_be_visible()
    grid = page.get_by_test_id("stDataFrame")
    expect(grid).to_be_visible()
    # A file dropped into the folder is counted without a reload (the page redraws itself while indexing).
    counts = page.get_by_test_id("stMarkdownContainer").filter(has_text=re.compile(r"\d+ indexed · "))
    before = int(re.search(r"([\d,]+) indexed", counts.first.inner_text())[1].replace(",", ""))
    (docs_dir / "dropped.md").write_text("# Dropped\n\nA note about Zorblax valves.\n", encoding="utf-8")
    expect(counts.first).to_contain_text(f"{before + 1} indexed", timeout=30_000)
    page.get_by_role("button", name="Check index").click()
    expect(page.get_by_text("The index matches the files on disk.")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(artifacts / "library.png"), full_page=True, animations="disabled")

    page.get_by_test_id("stSidebarNav").get_by_text("Settings").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    expect(page.get_by_text("Where each value comes from")).to_be_visible()
    page.screenshot(path=str(artifacts / "settings.png"), full_page=True, animations="disabled")
    watch.assert_clean()


def test_research_steps_appear_on_the_page_as_they_happen_folded_like_the_reasoning(
    page: Page, app_url: str, standin: OllamaStandIn, artifacts: Path
) -> None:
    open_when_indexed(page, app_url)
    requests_before = len(standin.chat_requests)
    standin.enqueue(ScriptedReply(thinking="I search for the temperature.", content="",
                                  tool_calls=[("browser.search", {"query": "Zorblax reactor temperature"})]))
    standin.enqueue(ScriptedReply(thinking="Then I work out the margin.", content="",
                                  tool_calls=[("run_python", {"code": "print((4350 - 3975) / 3975)"})]))
    standin.enqueue(ScriptedReply(thinking="Enough.", content=f"{FACT} [1]"))

    ask(page, QUESTION)

    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    steps = answer.get_by_text("Research steps")
    expect(steps).to_be_visible()
    steps.click()
    expect(answer.get_by_text(re.compile(r"Searched: Zorblax reactor temperature, \d+ passages?"))).to_be_in_viewport()
    expect(answer.get_by_text("Calculated", exact=False).first).to_be_visible()
    expect(answer.get_by_text("0.09433962264150944", exact=False).first).to_be_visible()  # run in the sandbox
    page.screenshot(path=str(artifacts / "research-steps.png"), full_page=True, animations="disabled")
    offered = standin.offered[requests_before:]
    assert "browser.search" in offered[0] and "run_python" in offered[0]
    assert [m["role"] for m in standin.chat_requests[-1]["messages"]][-4:] == ["assistant", "tool", "assistant", "tool"]


def test_the_research_switch_answers_in_one_request(page: Page, app_url: str, standin: OllamaStandIn) -> None:
    open_when_indexed(page, app_url)
    page.get_by_test_id("stSidebar").get_by_text("Research mode").click()
    requests_before = len(standin.chat_requests)
    ask(page, QUESTION)
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer.get_by_text("Research steps")).to_have_count(0)
    assert standin.offered[requests_before:] == [[]]
