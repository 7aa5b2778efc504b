"""Research mode: the model searches the library, opens what it found, finds phrases in it and calculates,
with tools, before it answers.

The loop is independent of the backend: it speaks the chat interface's neutral messages (rag/llm/chat.py) and
each backend writes them in its wire format. Every request offers the tools until a limit is reached — the
number of tool calls (`research.max_steps`), the time (`research.max_seconds`) or the room left in the context
window for another result — then one last request offers none, with a note that says why, and the model
answers from what it gathered; the answer says so too. Reasoning is sent back between the tool calls of the
turn (harmony keeps it across tool calls); a malformed tool call the server could not parse is asked again
once. A server that refuses tools on the first request raises ToolsUnsupported for `ask` to answer in one shot.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from rag.answer.events import (
    Answer,
    AnswerDelta,
    AnswerEvent,
    AnswerRetracted,
    Calculated,
    ReasoningDelta,
    Step,
    StepTaken,
)
from rag.answer.prompt import estimate_tokens
from rag.errors import MalformedToolCall, ToolsUnsupported
from rag.llm.chat import ChatModel, Delta, Message, StreamEvent, ToolCall, ToolSpec, Usage
from rag.llm.harmony import Conversation, chat_messages
from rag.records import Effort, Hit
from rag.settings import ResearchSettings

logger = logging.getLogger(__name__)

RESEARCH_RULES = """
- Before you answer you may use tools on the user's library: search it (search), open a document or page \
you have seen to read all of it (open), find a phrase in an opened document (find), and run Python to \
calculate (python: print what you need). Passages that tools return are numbered like the sources: cite \
them the same way, by their number.
- When the sources do not answer the question, search again with other words, or open the page around a \
passage to read the whole table or paragraph.
- Work out every derived figure (sums, differences, ratios, percentages) with the python tool rather than \
in your head, and give the expression with the result.
- Answer as soon as you have what you need."""

# A tool result's likely size in tokens (eight passages of a search, or a page view of 60 lines): tools are
# offered only while this much room is left, so a result never pushes the prompt past the context window.
RESULT_ROOM_TOKENS = 2500
RESULT_PREVIEW_CHARS = 400  # of each tool result, kept in the step for --json


class ToolOutcome(Protocol):
    """What running one tool call gave (rag/tools/library.py makes them)."""

    @property
    def text(self) -> str: ...  # sent back to the model
    @property
    def summary(self) -> str: ...  # one line for the person
    @property
    def failed(self) -> bool: ...
    @property
    def labels(self) -> tuple[int, ...]: ...  # passages it showed the model
    @property
    def code(self) -> str | None: ...  # a calculation's code
    @property
    def output(self) -> str | None: ...  # a calculation's output


class Toolbox(Protocol):
    """The tools offered to the model and how a call is run (rag/tools/library.py)."""

    @property
    def specs(self) -> Sequence[ToolSpec]: ...
    def call(self, call: ToolCall) -> ToolOutcome: ...


def research_messages(conversation: Conversation) -> list[Message]:
    """The quick-mode prompt with the research rules added to its instructions."""
    return chat_messages(replace(conversation, instructions=conversation.instructions + RESEARCH_RULES))


# A number as the model writes it in code (4350, 3_975, 0.25) and as documents print it (4,350; 1 577.00).
_CODE_NUMBER = re.compile(r"(?<![\w.])\d[\d_]*(?:\.\d+)?(?![\w.])")
_TEXT_NUMBER = re.compile(r"(?<![\d.])\d{1,3}(?:[, \u00a0\u202f]\d{3})+(?:\.\d+)?|(?<![\d.,])\d+(?:\.\d+)?")


def _value(text: str) -> float | None:
    try:
        return float(re.sub(r"[,_ \u00a0\u202f]", "", text))
    except ValueError:
        return None


def operand_labels(code: str, passages: Sequence[Hit]) -> dict[str, list[int]]:
    """For each number in `code` worth tracing (not a small whole number like 2 or 100, which any text holds),
    the labels of the passages that print it, in any usual spelling ("4350" is found as "4,350")."""
    found: dict[str, list[int]] = {}
    values_by_label: list[set[float]] = []
    for hit in passages:
        values = {value for match in _TEXT_NUMBER.finditer(hit.text) if (value := _value(match.group())) is not None}
        values_by_label.append(values)
    for match in _CODE_NUMBER.finditer(code):
        literal = match.group()
        value = _value(literal)
        if value is None or literal in found or (value.is_integer() and abs(value) <= 100 and "." not in literal):
            continue
        labels = [label for label, values in enumerate(values_by_label, start=1) if value in values]
        if labels:
            found[literal] = labels
    return found


@dataclass
class Reply:
    """One streamed reply, gathered as it arrives (so what came before a failure is known too)."""

    thinking_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)


def relay(events: Iterable[StreamEvent], reply: Reply) -> Iterator[AnswerEvent]:
    """Pass a reply's reasoning and answer on to the face as they stream, gathering them, its tool calls and
    its usage into `reply`: quick mode's one reply and each of research mode's."""
    for event in events:
        if isinstance(event, Delta):
            if event.thinking:
                reply.thinking_parts.append(event.thinking)
                yield ReasoningDelta(event.thinking)
            if event.content:
                reply.content_parts.append(event.content)
                yield AnswerDelta(event.content)
        elif isinstance(event, ToolCall):
            reply.calls.append(event)
        else:
            reply.usage = event


def research(
    messages: list[Message],
    chat: ChatModel,
    toolbox: Toolbox,
    passages: Callable[[], Sequence[Hit]],
    limits: ResearchSettings,
    effort: Effort,
    answer: Answer,
    prompt_tokens: int,
    budget_tokens: int,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[AnswerEvent]:
    """Run the loop until the model answers, filling `answer` (text, reasoning, steps, usage, notices).

    `messages` is the conversation so far (changed in place: the calls and results are appended);
    `passages()` gives every passage the model has seen, by label, for tracing a calculation's operands;
    `prompt_tokens` estimates the prompt as it starts and `budget_tokens` what the prompt may grow to.
    Raises ToolsUnsupported when a request was refused for its tools (the server says so at once, on the first
    request), and MalformedToolCall only when requests offering no tools failed with it twice."""
    started = clock()
    used = prompt_tokens
    retried = retried_without_tools = False
    stop_reason: str | None = None
    reasoning: list[str] = []
    completion_tokens = 0
    while True:
        answer.estimated_prompt_tokens = used
        if stop_reason is None:
            stop_reason = _limit_reached(answer, limits, clock() - started, used, budget_tokens)
            if stop_reason is not None:
                _tell_to_answer(messages, stop_reason)
        offered: Sequence[ToolSpec] = toolbox.specs if stop_reason is None else ()
        reply = Reply()
        try:
            yield from relay(chat.stream(messages, effort, offered), reply)
        except ToolsUnsupported:  # for ask() to answer in one shot
            if reply.content:
                yield AnswerRetracted(reply.content)
            raise
        except MalformedToolCall as error:
            if reply.content:
                yield AnswerRetracted(reply.content)
            if stop_reason is not None:
                # A model may write a call even when none is offered; once more, then nothing more to try.
                if retried_without_tools:
                    raise
                retried_without_tools = True
                continue
            if not retried:
                logger.info("the server could not parse a tool call; asking again (%s)", error)
                retried = True
                continue
            stop_reason = "the server twice could not read the model's tool call"
            _tell_to_answer(messages, stop_reason)
            continue
        thinking, text, calls, usage = reply.thinking, reply.content, reply.calls, reply.usage
        if thinking:
            reasoning.append(thinking.strip())
        if usage is not None:
            answer.prompt_tokens = usage.prompt_tokens
            answer.done_reason = usage.done_reason
            completion_tokens += usage.completion_tokens or 0
            if usage.prompt_tokens is not None:
                used = max(used, usage.prompt_tokens)
        if not calls or not offered:
            if calls:
                logger.info("the model called a tool when none was offered; taking its text as the answer")
            answer.answer = text.strip()
            break
        if text:
            yield AnswerRetracted(text)  # a preamble to tool calls, not the answer
        # No content on a turn of tool calls: Ollama's gpt-oss template would render it on the `final` channel,
        # telling the model it had already answered.
        messages.append({"role": "assistant", "content": "", "thinking": thinking, "tool_calls": calls})
        used += estimate_tokens(text + thinking) + 16 * len(calls)
        for call in calls:
            result = yield from _run(call, toolbox, passages, limits, answer, clock)
            messages.append({"role": "tool", "name": call.name, "call_id": call.id, "content": result})
            used += estimate_tokens(result) + 8
    answer.reasoning = "\n\n".join(part for part in reasoning if part)
    answer.completion_tokens = completion_tokens or None
    if stop_reason is not None and answer.steps:
        answer.notices.append(
            f"Research stopped: {stop_reason}. The answer is from what was gathered by then"
            + (" (ARCHIVIST_RESEARCH__MAX_STEPS raises the number of tool calls)." if "tool calls" in stop_reason
               else ".")
        )


def _limit_reached(answer: Answer, limits: ResearchSettings, elapsed: float, used: int, budget: int) -> str | None:
    if len(answer.steps) >= limits.max_steps:
        return f"the limit of {limits.max_steps} tool calls was reached"
    if elapsed > limits.max_seconds:
        return f"the time limit of {limits.max_seconds:g} s was reached"
    if used + RESULT_ROOM_TOKENS > budget:
        return "the context window (ARCHIVIST_NUM_CTX) has no room for more results"
    return None


def _tell_to_answer(messages: list[Message], reason: str) -> None:
    """Tell the model it gets no more tools: on the last tool result when there is one (harmony reads it as
    part of the tool's reply), else as a short user message."""
    note = f"[No more tools: {reason}. Answer now from the sources you have.]"
    if messages and messages[-1].get("role") == "tool":
        messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\n\n{note}"}
    else:
        messages.append({"role": "user", "content": note})


def _run(
    call: ToolCall,
    toolbox: Toolbox,
    passages: Callable[[], Sequence[Hit]],
    limits: ResearchSettings,
    answer: Answer,
    clock: Callable[[], float],
) -> Generator[AnswerEvent, None, str]:
    """Run one call (or refuse it past the step limit: every call gets a result, as the APIs require)
    and record it as a step; returns the text for the model."""
    if len(answer.steps) >= limits.max_steps:
        return f"Not run: the limit of {limits.max_steps} tool calls is reached. Answer from what you have."
    started = clock()
    outcome = toolbox.call(call)
    calculation = None
    if outcome.code:  # a calculation (other tools leave it empty)
        calculation = Calculated(outcome.code, outcome.output or "", operand_labels(outcome.code, passages()))
    step = Step(
        number=len(answer.steps) + 1, tool=call.name, arguments=dict(call.arguments), summary=outcome.summary,
        seconds=clock() - started, failed=outcome.failed, labels=tuple(outcome.labels), calculation=calculation,
        result=outcome.text[:RESULT_PREVIEW_CHARS],
    )
    answer.steps.append(step)
    yield StepTaken(step)
    return outcome.text

