"""Run inside a network namespace that has only loopback (see tests/e2e/test_netns.py): the Ollama stand-in,
`archivist ingest`, `search`, `ask`, and the page in headless Chromium. Prints one JSON report.

    python -m tests.netns_session DOCS DATA_DIR
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.ollama_standin import OllamaStandIn, free_port

QUESTION = "How cold does the Zorblax reactor run?"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu",
                 "--no-first-run", "--disable-sync"]


def archivist(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def outside_is_unreachable() -> str:
    """What a plain socket (no Archivist, no guard) gets when it tries to leave: proof of the namespace."""
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=2).close()
    except OSError as error:
        return type(error).__name__ + f": {error.strerror}"
    return "connected"


def page_session(url: str) -> dict[str, object]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        page.goto(url)
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Documents indexed: 1")).to_be_visible(timeout=120_000)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(QUESTION)
        box.press("Enter")
        answer = page.get_by_test_id("stChatMessage").last
        expect(answer.get_by_text("Sources")).to_be_visible(timeout=60_000)
        text = answer.inner_text()
        refused = sidebar.get_by_text("Connections off this machine refused since start").inner_text()
        browser.close()
    return {"answer_text": text, "refused_caption": refused, "requests": urls}


def main() -> int:
    docs, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
    report: dict[str, object] = {"outside": outside_is_unreachable()}
    with OllamaStandIn() as ollama:
        env = {**os.environ, "OLLAMA_HOST": ollama.url, "ARCHIVIST_DATA_DIR": str(data_dir)}
        for name, args in (("ingest", ["ingest", str(docs), "--json"]),
                           ("search", ["search", "Zorblax reactor temperature", "--json"]),
                           ("ask", ["ask", QUESTION, "--json"])):
            result = archivist(*args, env=env)
            report[name] = {"code": result.returncode, "stdout": result.stdout, "stderr": result.stderr[-2000:]}
        port = free_port()
        ui_data = data_dir.parent / "ui-data"
        ui = subprocess.Popen([sys.executable, "-m", "ui.cli", "ui", str(docs), "--port", str(port), "--data-dir",
                               str(ui_data)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            report["page"] = page_session(url)
        finally:
            os.killpg(ui.pid, 15)
            output, _ = ui.communicate(timeout=60)
            report["ui_log"] = output.decode(errors="replace")[-3000:]
        report["chat_requests"] = len(ollama.chat_requests)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
