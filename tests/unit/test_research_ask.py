"""Research mode through `ask`: a real catalog and search, the real toolbox, a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.ask import Answer, AnswerEvent, Finished, StepTaken, ask
from rag.errors import ToolsUnsupported
from rag.index.catalog import Catalog
from rag.index.index import FileFacts, Index, NewChunk
from rag.llm.chat import ToolCall
from rag.settings import Settings, load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedCalculator, ScriptedChat

DOCUMENTS = {
    "/lib/reactor.md": ["The Zorblax reactor runs at 42 kelvin. Its coolant is liquid helium."],
    "/lib/budget.md": ["Revenue was 4,350 million in 2023 and 3,975 million in 2022."],
    "/lib/garden.md": ["Quinces ripen in October in the north garden."],
}


@pytest.fixture
def index(tmp_path: Path) -> Index:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    for path, texts in DOCUMENTS.items():
        chunks = [NewChunk(text, page, page) for page, text in enumerate(texts, start=1)]
        index.write_document(FileFacts(path, path, 1, 1), "markdown", len(texts), chunks)
    return index


def settings(**overrides: object) -> Settings:
    # One passage in the prompt, so what the model finds with its tools is new to it.
    return load_settings(min_relevance=0.0, context={"candidates": 1}, **overrides)


def finish(events: list[AnswerEvent]) -> Answer:
    assert isinstance(events[-1], Finished)
    return events[-1].answer


def test_a_second_search_finds_a_document_the_first_did_not_and_the_answer_cites_it(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("", thinking="The sources are about the reactor; search the budget.",
                 tool_calls=[ToolCall("search", {"query": "revenue 2023 2022"})])
    chat.enqueue("", tool_calls=[ToolCall("run_python", {"code": "print((4350 - 3975) / 3975)"})])
    chat.enqueue("Revenue grew from 3,975 million to 4,350 million [2], about 9.4%.")
    calculator = ScriptedCalculator()
    calculator.enqueue("0.09433962264150944\n")
    events = list(ask("How cold does the Zorblax reactor run, and how did revenue change?", index, chat,
                      settings(), mode="research", calculator=calculator))
    answer = finish(events)
    assert answer.mode == "research"
    assert [step.tool for step in answer.steps] == ["search", "run_python"]
    assert sum(isinstance(event, StepTaken) for event in events) == 2
    assert answer.passages[0].path == "/lib/reactor.md"  # the prompt's one source is [1]
    assert answer.passages[1].path == "/lib/budget.md"  # the search's new passage is [2]
    [citation] = answer.citations
    assert citation.n == 2 and citation.path == "/lib/budget.md"
    assert answer.sentences[0].cited == [2]  # checked against the passage the tool brought
    calculation = answer.steps[1].calculation
    assert calculation is not None and calculation.operands == {"4350": [2], "3975": [2]}
    assert calculator.runs == ["print((4350 - 3975) / 3975)"]
    assert chat.offered[0] == ["search", "open", "find", "run_python"]
    # The search result went back labelled, one block per passage, each starting on its own line.
    tool_result = chat.history[-1][0][-1]
    assert tool_result["role"] == "tool" and tool_result["content"].startswith("0.0943")
    search_result = chat.history[1][0][-1]["content"]
    assert "\n[2] budget.md — p. 1\n<source>\n" in "\n" + search_result


def test_quick_mode_offers_no_tools(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat, settings(), mode="quick",
                             calculator=ScriptedCalculator())))
    assert answer.mode == "quick" and answer.steps == [] and chat.offered == [[]]


def test_a_model_without_tools_answers_in_one_shot_with_a_notice(index: Index) -> None:
    chat = ScriptedChat(tools=False)
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat, settings(), mode="research",
                             calculator=ScriptedCalculator())))
    assert answer.mode == "quick" and chat.offered == [[]]
    assert any("does not take tools" in notice for notice in answer.notices)
    assert answer.citations and answer.citations[0].path == "/lib/reactor.md"


def test_a_server_that_refuses_tools_gets_the_one_shot_answer(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("", error=ToolsUnsupported("tools param requires --jinja flag"))
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat, settings(), mode="research",
                             calculator=ScriptedCalculator())))
    assert answer.answer == "It runs at 42 kelvin [1]." and answer.mode == "quick"
    assert chat.offered[-1] == []
    assert any("refused tools" in notice for notice in answer.notices)


def test_unknown_tools_and_bad_arguments_go_back_to_the_model_as_tool_errors(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("", tool_calls=[ToolCall("browse_web", {"url": "http://example.com"})])
    chat.enqueue("", tool_calls=[ToolCall("search", {}, arguments_error="not JSON: {query")])
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat, settings(), mode="research",
                             calculator=ScriptedCalculator())))
    assert [step.failed for step in answer.steps] == [True, True]
    results = [m["content"] for m in chat.history[-1][0] if m["role"] == "tool"]
    assert "browse_web" in results[0] and results[0].startswith("Error")
    assert results[1].startswith("Error")
    assert answer.answer == "It runs at 42 kelvin [1]."


def test_a_window_too_small_for_tool_results_answers_in_one_shot(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat, settings(num_ctx=2048),
                             mode="research", calculator=ScriptedCalculator())))
    assert answer.mode == "quick" and chat.offered == [[]]
    assert any("leaves no room for what research tools would bring" in notice for notice in answer.notices)
    # No note about tools reached the model: it was asked as in quick mode.
    assert all("No more tools" not in message["content"] for message in chat.history[0][0])


def test_no_steps_allowed_is_quick_mode(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("It runs at 42 kelvin [1].")
    answer = finish(list(ask("How cold does the Zorblax reactor run?", index, chat,
                             settings(research={"max_steps": 0}), mode="research", calculator=ScriptedCalculator())))
    assert answer.mode == "quick" and chat.offered == [[]] and answer.notices == []
