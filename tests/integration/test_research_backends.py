"""Research mode end to end through the real chat backends and the real sandbox: Ollama's wire format against
the Ollama stand-in, and the OpenAI SSE format against the OpenAI-compatible stand-in, over a real catalog."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rag.answer.ask import Answer, Finished, ask
from rag.index.catalog import Catalog
from rag.index.index import FileFacts, Index, NewChunk
from rag.llm.chat import ChatModel
from rag.llm.ollama import OllamaChat
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings, load_settings
from rag.tools.sandbox import SandboxCalculator
from tests import ollama_standin, openai_standin
from tests.fakes import HashingEmbedder, InMemoryVectorStore

pytestmark = pytest.mark.slow

DOCUMENTS = {
    "/lib/reactor.md": ["The Zorblax reactor runs at 42 kelvin. Its coolant is liquid helium."],
    "/lib/budget.md": [
        "Budget summary for the station.",
        "Revenue was 4,350 million in 2023 and 3,975 million in 2022. Costs rose by 120 million.",
    ],
    "/lib/garden.md": ["Quinces ripen in October in the north garden."],
}
QUESTION = "How cold does the Zorblax reactor run?"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    for path, texts in DOCUMENTS.items():
        chunks = [NewChunk(text, page, page) for page, text in enumerate(texts, start=1)]
        index.write_document(FileFacts(path, path, 1, 1), "markdown", len(texts), chunks)
    yield index
    index.close()


@pytest.fixture(scope="module")
def calculator() -> Iterator[SandboxCalculator]:
    sandbox = SandboxCalculator.from_settings(load_settings(research={"sandbox_cpu_seconds": 1}))
    yield sandbox
    sandbox.close()


@dataclass
class Backend:
    """One chat backend against its stand-in, and how to script a reply for it."""

    name: str
    standin: Any
    chat: ChatModel
    search: str  # the search tool's name on this wire

    def reply(self, content: str = "", thinking: str = "", calls: list[tuple[str, Any]] | None = None) -> None:
        if self.name == "ollama":
            self.standin.enqueue(ollama_standin.ScriptedReply(thinking=thinking, content=content,
                                                              tool_calls=calls or []))
        else:
            self.standin.enqueue(openai_standin.ScriptedReply(reasoning=thinking, content=content,
                                                              tool_calls=calls or []))

    def results(self) -> list[str]:
        """What the tool messages of the last request said."""
        messages = self.standin.chat_requests[-1]["messages"]
        return [str(m.get("content")) for m in messages if m.get("role") == "tool"]


def settings_for(name: str, url: str, data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": data_dir, "min_relevance": 0.0, "context": {"candidates": 1}}
    if name == "ollama":
        base |= {"llm": "ollama", "ollama_host": url}
    else:
        base |= {"llm": "openai", "openai_base_url": url, "model": openai_standin.DEFAULT_MODEL}
    return load_settings(**(base | overrides))


@pytest.fixture(params=["ollama", "openai"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "ollama":
        with ollama_standin.OllamaStandIn() as server:
            chat: ChatModel = OllamaChat(settings_for("ollama", server.url, tmp_path))
            yield Backend("ollama", server, chat, "browser.search")
            chat.close()
    else:
        with openai_standin.OpenAIStandIn() as server:
            chat = OpenAIChat(settings_for("openai", server.url, tmp_path))
            yield Backend("openai", server, chat, "search")
            chat.close()


def answer(backend: Backend, index: Index, calculator: SandboxCalculator, question: str = QUESTION,
           **overrides: Any) -> Answer:
    settings = settings_for(backend.name, backend.standin.url, index.catalog.path.parent, **overrides)
    events = list(ask(question, index, backend.chat, settings, mode="research", calculator=calculator))
    assert isinstance(events[-1], Finished)
    return events[-1].answer


def test_a_second_search_finds_what_the_first_did_not_and_the_answer_cites_it(
    backend: Backend, index: Index, calculator: SandboxCalculator
) -> None:
    backend.reply(thinking="Search the garden.", calls=[(backend.search, {"query": "quinces garden", "topn": 1})])
    backend.reply(thinking="Now the budget.",
                  calls=[(backend.search, {"query": "revenue 2023 2022 budget", "topn": 1})])
    backend.reply(content="Revenue was 4,350 million in 2023 [3].")
    result = answer(backend, index, calculator, "How did the station's revenue change?")
    assert [step.tool for step in result.steps] == ["search", "search"]
    budget = [label for label, hit in enumerate(result.passages, start=1) if "4,350" in hit.text]
    assert budget and budget[0] not in result.steps[0].labels and budget[0] in result.steps[1].labels
    assert result.citations and result.citations[0].path == "/lib/budget.md"
    # Every request offered the tools, under the names this wire uses.
    assert all(backend.search in names for names in backend.standin.offered)


def test_open_find_and_a_calculation_go_back_to_the_model(
    backend: Backend, index: Index, calculator: SandboxCalculator
) -> None:
    opener = "browser.open" if backend.name == "ollama" else "open"
    finder = "browser.find" if backend.name == "ollama" else "find"
    backend.reply(calls=[(backend.search, {"query": "revenue 2023"})])
    backend.reply(calls=[(opener, {"id": "budget.md"})])
    backend.reply(calls=[(finder, {"pattern": "3,975"})])
    backend.reply(calls=[("run_python", {"code": "print(round((4350 - 3975) / 3975 * 100, 1))"})])
    backend.reply(content="Revenue grew by 9.4% [2].")
    result = answer(backend, index, calculator, "By how much did revenue grow?")
    assert [step.tool for step in result.steps] == ["search", "open", "find", "run_python"]
    assert not any(step.failed for step in result.steps)
    opened, found, calculated = backend.results()[1:]
    assert "L1:" in opened and "budget.md" in opened
    assert "3,975" in found
    assert calculated.strip() == "9.4"
    calculation = result.steps[3].calculation
    assert calculation is not None and set(calculation.operands) == {"4350", "3975"}


def test_hostile_code_comes_back_as_a_tool_error_and_the_answer_goes_on(
    backend: Backend, index: Index, calculator: SandboxCalculator, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-value")
    marker = tmp_path / "marker"
    attacks = [
        f"print(open({str(secret)!r}).read())",
        f"import os; os.system('touch {marker}')",
        "import subprocess; subprocess.run(['true'])",
        "while True: pass",
        "x = ' ' * (2**31 - 2)",
        "while True: print('flood' * 100)",
    ]
    for code in attacks:
        backend.reply(calls=[("run_python", {"code": code})])
    backend.reply(content="It runs at 42 kelvin [1].")
    result = answer(backend, index, calculator)
    assert result.answer == "It runs at 42 kelvin [1]."
    assert [step.failed for step in result.steps] == [True] * len(attacks)
    results = backend.results()
    assert all(text.startswith("Error") for text in results), results
    assert not any("the-secret-value" in text for text in results)
    assert not marker.exists()
    assert "CPU time limit" in results[3] and "memory limit" in results[4]


def test_unknown_tools_bad_arguments_and_the_step_cap(
    backend: Backend, index: Index, calculator: SandboxCalculator
) -> None:
    backend.reply(calls=[("browse_web", {"url": "http://example.com"})])
    backend.reply(calls=[(backend.search, "{not json")] if backend.name == "openai"
                  else [(backend.search, {"topn": 3})])  # Ollama parses JSON itself: a missing query instead
    backend.reply(content="It runs at 42 kelvin [1].")
    result = answer(backend, index, calculator, research={"max_steps": 2})
    assert len(result.steps) == 2 and all(step.failed for step in result.steps)
    assert backend.standin.offered[-1] == []  # the last request, past the cap, offered no tools
    assert any("limit of 2 tool calls" in notice for notice in result.notices)
    assert result.answer.startswith("It runs at 42 kelvin")


def test_a_model_without_tools_is_answered_in_one_shot(index: Index, calculator: SandboxCalculator,
                                                        tmp_path: Path) -> None:
    with ollama_standin.OllamaStandIn(without_tools={ollama_standin.DEFAULT_MODEL}) as server:
        chat = OllamaChat(settings_for("ollama", server.url, tmp_path))
        events = list(ask(QUESTION, index, chat, settings_for("ollama", server.url, tmp_path), mode="research",
                          calculator=calculator))
        chat.close()
        assert server.offered == [[]]
    result = events[-1].answer  # type: ignore[union-attr]
    assert result.mode == "quick" and any("does not take tools" in notice for notice in result.notices)


def test_a_server_that_rejects_tools_is_answered_in_one_shot(index: Index, calculator: SandboxCalculator,
                                                             tmp_path: Path) -> None:
    with openai_standin.OpenAIStandIn(refuse_tools=openai_standin.VLLM_WITHOUT_TOOL_PARSER) as server:
        settings = settings_for("openai", server.url, tmp_path)
        chat = OpenAIChat(settings)
        events = list(ask(QUESTION, index, chat, settings, mode="research", calculator=calculator))
        chat.close()
    result = events[-1].answer  # type: ignore[union-attr]
    assert result.mode == "quick" and result.answer
    assert any("refused tools" in notice for notice in result.notices)


def test_ollamas_tool_call_parse_error_is_retried(index: Index, calculator: SandboxCalculator,
                                                  tmp_path: Path) -> None:
    with ollama_standin.OllamaStandIn() as server:
        server.enqueue(ollama_standin.malformed_tool_call())
        server.enqueue(ollama_standin.ScriptedReply(content="It runs at 42 kelvin [1]."))
        settings = settings_for("ollama", server.url, tmp_path)
        chat = OllamaChat(settings)
        events = list(ask(QUESTION, index, chat, settings, mode="research", calculator=calculator))
        chat.close()
        assert len(server.chat_requests) == 2 and server.offered[1]  # asked again, with the tools
    result = events[-1].answer  # type: ignore[union-attr]
    assert result.answer == "It runs at 42 kelvin [1]."
