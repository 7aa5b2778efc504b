"""Nothing leaks through the page, and no other site can frame it: the real app in Chromium.

A document, an answer and a reasoning text full of images, links, reference links, autolinks, bare URLs,
e-mail addresses and raw HTML pointing at 198.51.100.7 (TEST-NET-2: nothing answers there) are drawn; the
test fails on any request to a host other than 127.0.0.1 being attempted at all, and on any CSP violation
(a request the CSP blocks never reaches the network, so the violation is how an attempt shows then).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import DOCUMENT, PDF_FACT, Watch
from tests.browser.test_page import ANSWER_TIMEOUT_MS, ask, open_when_indexed
from tests.ollama_standin import OllamaStandIn, ScriptedReply
from tests.pdf_factory import text_pdf

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = "198.51.100.7"
VALVE_FACT = "The Vortigan valve opens at 7 bar"


def leaky(prefix: str) -> str:
    """Markdown with every route to another host we know of, each address naming where it came from."""
    return (
        f"![diagram](http://{OUT}/{prefix}-image.png) [manual](http://{OUT}/{prefix}-link) "
        f"[reference][{prefix}] ![reference image][{prefix}-img] <http://{OUT}/{prefix}-autolink> "
        f"https://{OUT}/{prefix}-bare www.example.org/{prefix} {prefix}@example.org "
        f'<img src="http://{OUT}/{prefix}-raw.png"> <a href="http://{OUT}/{prefix}-a">anchor</a> '
        f'<iframe src="http://{OUT}/{prefix}-frame"></iframe> <style>@import url(http://{OUT}/{prefix}.css);</style>'
        f"\n\n[{prefix}]: http://{OUT}/{prefix}-reference\n[{prefix}-img]: http://{OUT}/{prefix}-reference.png\n"
    )


DOCUMENT_TEXT = f"{VALVE_FACT} and closes at 3 bar.\n\n{leaky('document')}"
ANSWER = (f"{VALVE_FACT} [1], **bold** stays bold.\n\n- The manual repeats: {leaky('repeated')}\n"
          f"- and adds: {leaky('answer')}")
REASONING = f"The source mentions the valve. {leaky('reasoning')}"
QUESTION = "At what pressure does the Vortigan valve open?"


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The usual documents, plus one whose text carries the leaks (the app of this module indexes these)."""
    folder = tmp_path_factory.mktemp("docs")
    (folder / "zorblax-reactor.md").write_text(DOCUMENT, encoding="utf-8")
    (folder / "pump-manual.pdf").write_bytes(text_pdf([["Maintenance of the Quibble pump."], [PDF_FACT]]))
    (folder / "vortigan-valve.txt").write_text(DOCUMENT_TEXT, encoding="utf-8")
    return folder


def assert_nothing_points_outside(page: Page, app_url: str) -> None:
    """Every rendered image and link (the page's and any frame's) stays on this page's host."""
    page_host = urlsplit(app_url).netloc
    for frame in page.frames:
        images = frame.evaluate("() => [...document.images].map(i => i.currentSrc || i.src)")
        links = frame.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        frames = frame.evaluate("() => [...document.querySelectorAll('iframe, object, embed')].length")
        for url in images:
            parts = urlsplit(url)
            assert parts.scheme in ("data", "blob") or parts.netloc == page_host, f"image from {url}"
        for url in links:
            assert urlsplit(url).netloc == page_host, f"link to {url}"
        assert frames == 0


def test_model_and_document_text_load_nothing_and_link_nowhere(
    watched: tuple[Page, Watch], app_url: str, standin: OllamaStandIn, artifacts: Path
) -> None:
    page, watch = watched
    open_when_indexed(page, app_url)
    standin.enqueue(ScriptedReply(thinking=REASONING, content=ANSWER))

    ask(page, QUESTION)

    answer = page.get_by_test_id("stChatMessage").last
    expect(answer.get_by_text("Sources")).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(answer.get_by_text("[1] vortigan-valve.txt", exact=False).first).to_be_visible()
    # Folded reasoning, streamed and finished answer, quote: nothing was fetched, nothing is a link.
    watch.assert_clean()
    assert_nothing_points_outside(page, app_url)

    answer.get_by_text("Reasoning", exact=True).click()
    expect(answer.get_by_text("The source mentions the valve.", exact=False)).to_be_visible()
    answer.get_by_text("Passage", exact=True).first.click()
    expect(answer.locator("code", has_text=f"http://{OUT}/document-reference").last).to_be_visible()
    # Still readable: formatting kept, our citation a live in-page link, the addresses shown as inert text.
    expect(answer.locator("strong", has_text="bold").first).to_be_visible()
    expect(answer.get_by_role("link", name="[1]")).to_have_attribute("href", "#turn-0-source-1")
    expect(answer.locator("code", has_text=f"http://{OUT}/answer-link").first).to_be_visible()
    expect(answer.get_by_text("[image: diagram]").first).to_be_visible()
    page.screenshot(path=str(artifacts / "leaks-neutralised.png"), full_page=True, animations="disabled")
    watch.assert_clean()
    assert_nothing_points_outside(page, app_url)
    assert not any(OUT in url for url in watch.requests)


class _FramingSite(BaseHTTPRequestHandler):
    """Another site (another origin: another port) whose page puts the app in an iframe."""

    app_url = ""

    def do_GET(self) -> None:
        body = (f'<!doctype html><title>Some other site</title><h1>Some other site</h1>'
                f'<iframe id="app" src="{self.app_url}/library" width="1000" height="700"></iframe>').encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def framing_site(app_url: str) -> Iterator[str]:
    handler = type("Handler", (_FramingSite,), {"app_url": app_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="framing-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_site_cannot_frame_the_page(page: Page, app_url: str, framing_site: str, artifacts: Path) -> None:
    console: list[str] = []

    def remember(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", remember)
    with page.expect_response(lambda response: response.url == f"{app_url}/library") as answered:
        page.goto(framing_site)  # waits for the load event, which waits for the frame
    assert answered.value.status == 200  # the page was served; the browser refused to show it in a frame
    expect(page.get_by_role("heading", name="Some other site")).to_be_visible()
    frame = page.frame_locator("#app")
    child = next(frame_ for frame_ in page.frames if frame_ is not page.main_frame)
    assert not child.url.startswith(app_url), child.url
    expect(frame.locator("#root")).to_have_count(0)
    expect(frame.get_by_text("Library")).to_have_count(0)
    assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in console), console
    page.screenshot(path=str(artifacts / "framing-refused.png"), full_page=True, animations="disabled")
