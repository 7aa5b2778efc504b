"""The command-line contract, end to end: real subprocesses, real Chroma, the real model, real PDFs,
and the Ollama stand-in on a real port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tests.ollama_standin import OllamaStandIn, ScriptedReply, free_port
from tests.pdf_factory import encrypted, text_pdf

pytestmark = pytest.mark.slow

FACT = "The Zorblax reactor runs at 42 kelvin."


def archivist(*args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 300):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=timeout, env=env or subprocess_env(),
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small folder of real documents, good and bad."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "notes.md").write_text(f"# Physics notes\n\n## Reactors\n\n{FACT} It was built in 1999.\n")
    (docs / "plain.txt").write_text("Bananas are rich in potassium. Apples keep the doctor away.\n")
    pages = [["Annual report 2022.", "Introduction."], ["Revenue grew to 7 million euros in 2022."], ["Outlook."]]
    (docs / "report.pdf").write_bytes(text_pdf(pages))
    (docs / "locked.pdf").write_bytes(encrypted(text_pdf([["A secret page."]]), user_password="hunter2"))
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (docs / ".hidden.md").write_text("never indexed")
    return docs


@pytest.fixture(scope="module")
def indexed(library: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    data_dir = tmp_path_factory.mktemp("data")
    result = archivist("ingest", str(library), "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    return data_dir, json.loads(result.stdout)


def test_ingest_reports_each_file_and_goes_on_past_failures(indexed: tuple[Path, dict[str, object]]) -> None:
    _, report = indexed
    assert report["indexed"] == 3
    assert report["unchanged"] == 0 and report["removed"] == 0
    failed = {Path(str(item["path"])).name: item["error"] for item in report["failed"]}  # type: ignore[index, union-attr]
    assert failed == {"locked.pdf": "encrypted: needs a password", "empty.pdf": "empty file (0 bytes)"}
    skipped = {Path(str(item["path"])).name: item["error"] for item in report["skipped"]}  # type: ignore[index, union-attr]
    assert skipped == {"image.png": "unsupported file type .png"}


def test_ingest_again_changes_nothing(indexed: tuple[Path, dict[str, object]], library: Path) -> None:
    data_dir, _ = indexed
    result = archivist("ingest", str(library), "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["indexed"], report["unchanged"], report["embedded_texts"]) == (0, 3, 0)
    # still listed: they are still not in the index (and are not retried until they change)
    assert len(report["failed"]) == 2 and len(report["skipped"]) == 1


def test_search_finds_the_page(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    result = archivist("search", "How much revenue in 2022?", "--k", "3", "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert [hit["rank"] for hit in hits] == [1, 2, 3]
    best = hits[0]
    assert set(best) >= {"rank", "score", "path", "page_start", "page_end", "chunk_id", "text"}
    assert Path(best["path"]).name == "report.pdf" and best["page_start"] <= 2 <= best["page_end"]
    assert "7 million" in best["text"]


def test_status_counts_documents_chunks_and_failures(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    result = archivist("status", "--json", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["documents"] == {"indexed": 3, "failed": 2, "skipped": 1, "partial": 0}
    assert status["chunks"] >= 3
    assert {Path(f["path"]).name: f["error"] for f in status["failures"]}["locked.pdf"] == "encrypted: needs a password"


def test_ask_streams_a_cited_answer_from_ollama(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    with OllamaStandIn() as server:
        server.enqueue(ScriptedReply(thinking="Source 1 gives the temperature.", content="It runs at 42 kelvin [1]."))
        result = archivist(
            "ask", "How cold does the Zorblax reactor run?", "--effort", "low", "--json",
            data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=server.url),
        )
        assert result.returncode == 0, result.stderr
        request = server.chat_requests[-1]
    answer = json.loads(result.stdout)
    assert answer["answer"] == "It runs at 42 kelvin [1]."
    assert answer["reasoning"] == "Source 1 gives the temperature."
    [citation] = answer["citations"]
    assert Path(citation["path"]).name == "notes.md" and citation["page_start"] == 1
    assert citation["quote"] == FACT
    assert set(citation) == {"n", "path", "page_start", "page_end", "chunk_id", "quote", "quote_start", "quote_end"}
    # Checked sentence by sentence: the one sentence cites [1], and [1]'s passage supports it.
    [sentence] = answer["sentences"]
    assert sentence["text"] == "It runs at 42 kelvin [1]." and sentence["cited"] == [1]
    assert sentence["status"] == "supported"
    support = sentence["support"]
    assert support["n"] == 1 and support["quote"] == FACT and support["chunk_id"] == citation["chunk_id"]
    passage = answer["passages"][0]["text"]
    assert passage[support["quote_start"]:support["quote_end"]] == FACT
    assert answer["unsupported"] == [] and answer["uncited"] == []
    assert answer["usage"]["truncated"] is False and answer["usage"]["prompt_tokens"] > 0
    assert answer["usage"]["prompt_tokens"] <= answer["usage"]["estimated_prompt_tokens"]
    # What went over the wire: gpt-oss settings, rules as system, sources with keys at line starts.
    assert request["model"] == "gpt-oss:20b" and request["think"] == "low" and request["stream"] is True
    assert request["options"]["num_ctx"] == 16384
    system, user = request["messages"]
    assert system["role"] == "system" and "only the numbered sources" in system["content"]
    assert user["role"] == "user" and "\n[1] notes.md" in user["content"]
    assert user["content"].rstrip().endswith("Question: How cold does the Zorblax reactor run?")


def test_ask_researches_with_tools_and_reports_its_steps(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    question = "How much revenue in 2022, doubled?"
    with OllamaStandIn() as server:
        for _ in range(2):  # once with --json, once as text
            server.enqueue(ScriptedReply(thinking="Search the report.", content="",
                                         tool_calls=[("browser.search", {"query": "revenue 2022"})]))
            server.enqueue(ScriptedReply(thinking="Double it.", content="",
                                         tool_calls=[("run_python", {"code": "print(7 * 2)"})]))
            server.enqueue(ScriptedReply(content="Revenue was 7 million [1], so doubled it is 14 million."))
        result = archivist("ask", question, "--json", data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=server.url))
        text = archivist("ask", question, data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=server.url))
        offered = server.offered
        # --steps 0: the one request offers no tools
        quick = archivist("ask", question, "--steps", "0", "--json", data_dir=data_dir,
                          env=subprocess_env(OLLAMA_HOST=server.url))
        assert server.offered[-1] == []
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "research"
    search, calculation = answer["steps"]
    assert (search["tool"], search["arguments"]) == ("search", {"query": "revenue 2022"})
    assert search["summary"].startswith("Searched: revenue 2022") and isinstance(search["seconds"], float)
    assert calculation["tool"] == "run_python" and calculation["calculation"]["output"].strip() == "14"
    assert offered[0] == ["browser.search", "browser.open", "browser.find", "run_python"]
    assert text.returncode == 0, text.stderr
    assert "(Searched: revenue 2022" in text.stderr and "Calculated" in text.stderr
    assert "Revenue was 7 million [1]" in text.stdout
    assert quick.returncode == 0, quick.stderr
    assert json.loads(quick.stdout)["steps"] == []


def test_ask_reports_a_prompt_the_server_cut_and_a_reply_cut_short(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    with OllamaStandIn() as server:
        # Ollama cuts an over-long prompt to num_ctx tokens and says so only in its log; the count tells.
        server.enqueue(ScriptedReply(thinking="Long.", content="", done_reason="length", prompt_eval_count=4096))
        result = archivist("ask", "How cold does the Zorblax reactor run?", data_dir=data_dir,
                           env=subprocess_env(OLLAMA_HOST=server.url, ARCHIVIST_NUM_CTX="4096"))
        request = server.chat_requests[-1]
    assert result.returncode == 0, result.stderr
    assert request["options"]["num_ctx"] == 4096
    assert "The server cut the prompt to its context window (4,096 of ARCHIVIST_NUM_CTX=4,096 tokens)" in result.stderr
    assert "ran out of tokens before writing any answer (ARCHIVIST_NUM_PREDICT=4,096)" in result.stderr


def test_ask_while_another_process_indexes_says_so_and_a_reply_cut_off_says_so(
    indexed: tuple[Path, dict[str, object]],
) -> None:
    from ingest.control import IndexingControl

    data_dir, _ = indexed
    board = IndexingControl(data_dir)
    board.update(state="indexing", total=2, done=1, force=True)  # as the page's watcher publishes it (our pid)
    try:
        with OllamaStandIn() as server:
            server.enqueue(ScriptedReply(thinking="Cold.", content="It runs at 42 kelvin", end_without_done=True))
            result = archivist("ask", "How cold does the Zorblax reactor run?", "--json", data_dir=data_dir,
                               env=subprocess_env(OLLAMA_HOST=server.url))
    finally:
        board.clear()
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["answer"] == "It runs at 42 kelvin"
    assert answer["notices"][0] == "Still indexing: 1 of 2 files; answers may change as the rest is read."
    assert any(notice.startswith("The reply ended early") for notice in answer["notices"])
    assert answer["usage"]["done_reason"] == "incomplete"


def test_ask_about_something_not_in_the_documents_does_not_call_the_model(
    indexed: tuple[Path, dict[str, object]],
) -> None:
    data_dir, _ = indexed
    with OllamaStandIn() as server:
        result = archivist("ask", "What is the capital city of Mongolia?", "--json", data_dir=data_dir,
                           env=subprocess_env(OLLAMA_HOST=server.url))
        assert server.chat_requests == []
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["answer"] == "I could not find the answer in your documents."
    assert answer["found_relevant"] is False and answer["citations"] == [] and answer["passages"]


def test_doctor_reports_every_part_and_the_fix_for_what_is_broken(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    url = f"http://127.0.0.1:{free_port()}"
    down = archivist("doctor", "--json", data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=url))
    assert down.returncode == 1, down.stderr
    findings = {f["check"]: f for f in json.loads(down.stdout)["findings"]}
    assert set(findings) == {"python", "packages", "embedding model", "data folder", "index", "language model",
                             "research mode", "egress"}
    assert findings["language model"]["level"] == "problem" and "ollama serve" in findings["language model"]["detail"]
    assert findings["index"]["level"] == "ok" and "catalog and vectors agree" in findings["index"]["detail"]
    assert findings["egress"]["level"] == "ok"
    with OllamaStandIn() as server:
        up = archivist("doctor", data_dir=data_dir,
                       env=subprocess_env(OLLAMA_HOST=server.url, ARCHIVIST_NUM_CTX="262144"))
    assert up.returncode == 0, up.stdout + up.stderr
    assert "[warning] language model: gpt-oss:20b at " in up.stdout
    assert "Lower ARCHIVIST_NUM_CTX to 131,072 or less" in up.stdout
    assert "research mode: on: gpt-oss:20b may search, open, find and calculate" in up.stdout


def test_ask_without_ollama_says_exactly_what_to_do(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    url = f"http://127.0.0.1:{free_port()}"
    result = archivist("ask", "Zorblax?", data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=url))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert url in lines[0] and "ollama serve" in lines[0]
    assert "Traceback" not in result.stderr


def test_ask_with_the_model_missing_says_to_pull_it(indexed: tuple[Path, dict[str, object]]) -> None:
    data_dir, _ = indexed
    with OllamaStandIn() as server:
        server.models.clear()
        result = archivist("ask", "Zorblax?", data_dir=data_dir, env=subprocess_env(OLLAMA_HOST=server.url))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ollama pull gpt-oss:20b" in lines[0] and server.url in lines[0]


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, Path, subprocess.Popen[str]]]:
    docs, data_dir = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    (docs / "first.md").write_text("The first note mentions marmalade.\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "watch", str(docs), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(), start_new_session=True,
    )
    yield docs, data_dir, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()  # and closes its pipes


def wait_for_status(data_dir: Path, predicate, timeout: float = 120.0) -> dict[str, object]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    status: dict[str, object] = {}
    while time.monotonic() < deadline:
        result = archivist("status", "--json", data_dir=data_dir)
        if result.returncode == 0:
            status = json.loads(result.stdout)
            if predicate(status):
                return status
        time.sleep(0.5)
    raise AssertionError(f"index never reached the expected state; last status: {status}")


def test_watch_follows_the_folder_refuses_a_second_writer_and_stops_on_sigterm(
    watched: tuple[Path, Path, subprocess.Popen[str]],
) -> None:
    docs, data_dir, process = watched
    wait_for_status(data_dir, lambda s: s["documents"]["indexed"] == 1)  # type: ignore[index]

    second = archivist("ingest", str(docs), data_dir=data_dir)
    assert second.returncode != 0
    assert f"pid {process.pid}" in second.stderr and "Traceback" not in second.stderr

    (docs / "second.txt").write_text("A second file about quinces.\n")
    wait_for_status(data_dir, lambda s: s["documents"]["indexed"] == 2)  # type: ignore[index]
    hits = json.loads(archivist("search", "quinces", "--k", "1", "--json", data_dir=data_dir).stdout)
    assert Path(hits[0]["path"]).name == "second.txt"

    shutil.move(docs / "second.txt", docs / "renamed.txt")
    (docs / "first.md").unlink()
    wait_for_status(
        data_dir, lambda s: s["documents"]["indexed"] == 1 and s["total_documents"] == 1  # type: ignore[index]
    )
    hits = json.loads(archivist("search", "quinces", "--k", "1", "--json", data_dir=data_dir).stdout)
    assert Path(hits[0]["path"]).name == "renamed.txt"

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
