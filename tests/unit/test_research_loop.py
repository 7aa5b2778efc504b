"""The research loop on its own: scripted model replies, a toolbox that records what it ran."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from rag.answer.events import Answer, AnswerDelta, AnswerEvent, AnswerRetracted, StepTaken
from rag.answer.research import RESULT_ROOM_TOKENS, research
from rag.errors import MalformedToolCall, ToolsUnsupported
from rag.llm.chat import Message, ToolCall, ToolSpec
from rag.records import Hit
from rag.settings import ResearchSettings
from tests.fakes import ScriptedChat

SPECS = [ToolSpec("search", "Search the library.", {"type": "object", "properties": {"query": {"type": "string"}},
                                                     "required": ["query"]}, "browser.search"),
         ToolSpec("python", "Run Python.", {"type": "object", "properties": {"code": {"type": "string"}},
                                            "required": ["code"]}, "python")]


@dataclass(frozen=True)
class Outcome:
    text: str
    summary: str
    failed: bool = False
    labels: tuple[int, ...] = ()
    code: str | None = None
    output: str | None = None


@dataclass
class RecordingToolbox:
    """Answers every call with a numbered passage block; `python` calls echo their code's result."""

    calls: list[ToolCall] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)

    @property
    def specs(self) -> Sequence[ToolSpec]:
        return SPECS

    def call(self, call: ToolCall) -> Outcome:
        self.calls.append(call)
        if call.name == "python":
            return Outcome("0.0943\n", "Calculated", code=str(call.arguments.get("code")), output="0.0943")
        label = len(self.passages) + 1
        text = f"Found about {call.arguments.get('query')}: revenue was 4,350."
        self.passages.append(Hit(rank=label, score=1.0, path="/docs/r.pdf", page_start=label, page_end=label,
                                 chunk_id=f"c{label}", text=text))
        return Outcome(f"[{label}] r.pdf — p. {label}\n<source>\n{text}\n</source>",
                       f"Searched: {call.arguments.get('query')}, 1 passage", labels=(label,))


def run(chat: ScriptedChat, toolbox: RecordingToolbox, limits: ResearchSettings | None = None,
        budget: int = 100_000) -> tuple[Answer, list[AnswerEvent], list[Message]]:
    messages: list[Message] = [{"role": "system", "content": "rules"}, {"role": "user", "content": "Question?"}]
    answer = Answer(question="Question?")
    events = list(research(messages, chat, toolbox, lambda: toolbox.passages, limits or ResearchSettings(),
                           "low", answer, 100, budget))
    return answer, events, messages


def test_a_search_then_an_answer() -> None:
    chat = ScriptedChat()
    chat.enqueue("", thinking="I should search.", tool_calls=[ToolCall("search", {"query": "revenue 2023"})])
    chat.enqueue("Revenue was 4,350 [1].", thinking="Found it.")
    toolbox = RecordingToolbox()
    answer, events, messages = run(chat, toolbox)
    assert answer.answer == "Revenue was 4,350 [1]."
    assert [step.summary for step in answer.steps] == ["Searched: revenue 2023, 1 passage"]
    assert answer.steps[0].labels == (1,) and answer.steps[0].tool == "search"
    assert [type(e).__name__ for e in events].count("StepTaken") == 1
    # The call and its result went back to the model, with the reasoning of the turn.
    assistant = messages[2]
    assert assistant["role"] == "assistant" and assistant["thinking"].strip() == "I should search."
    assert assistant["tool_calls"] == [ToolCall("search", {"query": "revenue 2023"})]
    assert messages[3]["role"] == "tool" and messages[3]["name"] == "search"
    assert messages[3]["content"].startswith("[1] r.pdf — p. 1\n")
    assert "I should search." in answer.reasoning and "Found it." in answer.reasoning
    assert chat.offered == [["search", "python"], ["search", "python"]]


def test_a_calculation_carries_its_code_output_and_operands() -> None:
    chat = ScriptedChat()
    chat.enqueue("", tool_calls=[ToolCall("search", {"query": "revenue"})])
    chat.enqueue("", tool_calls=[ToolCall("python", {"code": "print((4350 - 3975) / 3975)"})])
    chat.enqueue("Growth was 9.4% [1].")
    answer, _, _ = run(chat, RecordingToolbox())
    calculation = answer.steps[1].calculation
    assert calculation is not None and calculation.output == "0.0943"
    assert calculation.operands == {"4350": [1]}  # 3975 is in no passage


def test_the_step_cap_ends_with_a_request_that_offers_no_tools() -> None:
    chat = ScriptedChat()
    for n in range(5):
        chat.enqueue("", tool_calls=[ToolCall("search", {"query": f"try {n}"})])
    chat.enqueue("What I found [1].")
    toolbox = RecordingToolbox()
    answer, _, messages = run(chat, toolbox, ResearchSettings(max_steps=2))
    assert len(answer.steps) == 2 and len(toolbox.calls) == 2
    assert chat.offered[-1] == [] and all(chat.offered[:-1])
    assert "No more tools" in messages[-1]["content"]
    assert any("limit of 2 tool calls" in notice for notice in answer.notices)


def test_no_room_for_another_result_stops_the_research() -> None:
    chat = ScriptedChat()
    chat.enqueue("", tool_calls=[ToolCall("search", {"query": "x"})])
    chat.enqueue("Answer [1].")
    answer, _, _ = run(chat, RecordingToolbox(), budget=100 + RESULT_ROOM_TOKENS + 50)
    assert len(answer.steps) == 1 and chat.offered[-1] == []
    assert any("context window" in notice for notice in answer.notices)


def test_every_call_of_a_reply_gets_a_result_even_past_the_cap() -> None:
    chat = ScriptedChat()
    chat.enqueue("", tool_calls=[ToolCall("search", {"query": "a"}, id="1"), ToolCall("search", {"query": "b"},
                                                                                      id="2")])
    chat.enqueue("Done [1].")
    answer, _, messages = run(chat, RecordingToolbox(), ResearchSettings(max_steps=1))
    results = [m for m in messages if m["role"] == "tool"]
    assert [m["call_id"] for m in results] == ["1", "2"]
    assert results[1]["content"].startswith("Not run: the limit of 1 tool calls")
    assert len(answer.steps) == 1


def test_a_malformed_tool_call_is_asked_again_once_then_answered_without_tools() -> None:
    chat = ScriptedChat()
    chat.enqueue("", error=MalformedToolCall("error parsing tool call"))
    chat.enqueue("", tool_calls=[ToolCall("search", {"query": "x"})])
    chat.enqueue("", error=MalformedToolCall("error parsing tool call"))
    chat.enqueue("", error=MalformedToolCall("error parsing tool call"))
    chat.enqueue("From what I have [1].")
    answer, _, _ = run(chat, RecordingToolbox())
    assert answer.answer == "From what I have [1]."
    assert chat.offered[-1] == [] and len(chat.offered) == 5
    assert any("could not read the model's tool call" in notice for notice in answer.notices)


def test_a_refusal_of_tools_on_the_first_request_is_left_to_ask() -> None:
    chat = ScriptedChat()
    chat.enqueue("", error=ToolsUnsupported("model does not support tools"))
    with pytest.raises(ToolsUnsupported):
        run(chat, RecordingToolbox())


def test_a_preamble_before_tool_calls_is_retracted_from_the_answer() -> None:
    chat = ScriptedChat()
    chat.enqueue("Let me look that up.", tool_calls=[ToolCall("search", {"query": "x"})])
    chat.enqueue("It is 4,350 [1].")
    answer, events, _ = run(chat, RecordingToolbox())
    kinds = [type(e) for e in events]
    retracted = kinds.index(AnswerRetracted)
    assert AnswerDelta in kinds[:retracted] and StepTaken in kinds[retracted:]
    assert answer.answer == "It is 4,350 [1]."


def test_steps_serialise_for_json() -> None:
    chat = ScriptedChat()
    chat.enqueue("", tool_calls=[ToolCall("search", {"query": "x"})])
    chat.enqueue("A [1].")
    answer, _, _ = run(chat, RecordingToolbox())
    data: dict[str, Any] = answer.to_json()
    assert data["steps"][0]["tool"] == "search" and data["steps"][0]["arguments"] == {"query": "x"}
    assert data["steps"][0]["summary"].startswith("Searched:") and isinstance(data["steps"][0]["seconds"], float)


def test_a_parse_error_without_tools_offered_ends_the_research_instead_of_looping() -> None:
    chat = ScriptedChat()
    for _ in range(4):
        chat.enqueue("", error=MalformedToolCall("error parsing tool call"))
    with pytest.raises(MalformedToolCall):
        run(chat, RecordingToolbox())
    assert chat.offered == [["search", "python"], ["search", "python"], [], []]
