"""The ChatModel contract, run against every implementation: the Ollama client against the Ollama stand-in,
the OpenAI-compatible client against its stand-in (both real HTTP servers on loopback), and ScriptedChat.

What every chat backend promises (rag/llm/chat.py): a reply streams as Deltas that keep reasoning (`thinking`) and
answer (`content`) apart, reasoning first; every stream ends with exactly one Usage, which carries what the
server reported (prompt tokens, "stop" or "length"); `complete` is the answer text alone; every failure is an
LLMError that says what went wrong; `close` never cuts a reply that is still streaming. With tools offered: a
call arrives as a ToolCall (under the ToolSpec's name, arguments parsed) after the reply's pieces and before the
Usage; the neutral tool result reaches the server in its own wire form; a server or model without tools raises
ToolsUnsupported, a call the server could not parse MalformedToolCall.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from rag.errors import LLMError, LLMResponseError, LLMUnavailable, MalformedToolCall, ToolsUnsupported
from rag.llm.chat import ChatModel, Delta, Message, StreamEvent, ToolCall, ToolSpec, Usage
from rag.llm.ollama import OllamaChat
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings, load_settings
from tests import ollama_standin, openai_standin
from tests.fakes import ScriptedChat
from tests.ollama_standin import free_port

MESSAGES = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Which port?"}]
QUERY = {"type": "object", "properties": {"query": {"type": "string", "description": "what to look for"}},
         "required": ["query"]}
SEARCH = ToolSpec("search", "Search the library.", QUERY, trained_name="browser.search")
CALCULATE = ToolSpec("calculate", "Run Python code.", {"type": "object", "properties": {"code": {"type": "string"}},
                                                        "required": ["code"]})
TOOLS = [SEARCH, CALCULATE]
RESULT = "[2] ports.txt — p. 1\n<source>\nOllama listens on port 11434.\n</source>"


class Backend(Protocol):
    """One implementation, and a way to script the next reply its server (or fake) gives."""

    def script(self, thinking: str, content: str, done_reason: str = "stop", prompt_tokens: int | None = None,
               error_after: int | None = None, error: str = "") -> None: ...

    def chat(self) -> ChatModel: ...

    def script_call(self, tool: ToolSpec, arguments: dict[str, Any], thinking: str) -> None:
        """The next reply asks for `tool`, under the name this backend offers it by."""

    def refuse_tools(self) -> None:
        """From now on the model (or server) takes no tools."""

    def script_malformed_call(self) -> bool:
        """The next reply is a tool call whose arguments are not JSON: True when the server fails on it (Ollama),
        False when it passes the text on (OpenAI-compatible servers)."""

    def offered(self) -> list[list[str]]:
        """The tool names each request offered, as they went over the wire."""

    def wire_messages(self) -> list[dict[str, Any]]:
        """The messages of the last request, as they went over the wire."""


class OllamaBackend:
    def __init__(self, server: ollama_standin.OllamaStandIn) -> None:
        self.server = server

    def script(self, thinking: str, content: str, done_reason: str = "stop", prompt_tokens: int | None = None,
               error_after: int | None = None, error: str = "") -> None:
        self.server.enqueue(ollama_standin.ScriptedReply(
            thinking=thinking, content=content, done_reason=done_reason, prompt_eval_count=prompt_tokens,
            error_after_chunks=error_after, error=error or "an error was encountered while running the model",
        ))

    def chat(self) -> ChatModel:
        return OllamaChat(load_settings(ollama_host=self.server.url))

    def script_call(self, tool: ToolSpec, arguments: dict[str, Any], thinking: str) -> None:
        self.server.enqueue(ollama_standin.ScriptedReply(
            thinking=thinking, content="", tool_calls=[(tool.trained_name or tool.name, arguments)]))

    def refuse_tools(self) -> None:
        self.server.without_tools = set(self.server.models)

    def script_malformed_call(self) -> bool:
        self.server.enqueue(ollama_standin.malformed_tool_call())
        return True

    def offered(self) -> list[list[str]]:
        return self.server.offered

    def wire_messages(self) -> list[dict[str, Any]]:
        return list(self.server.chat_requests[-1]["messages"])


class OpenAIBackend:
    def __init__(self, server: openai_standin.OpenAIStandIn) -> None:
        self.server = server

    def script(self, thinking: str, content: str, done_reason: str = "stop", prompt_tokens: int | None = None,
               error_after: int | None = None, error: str = "") -> None:
        self.server.enqueue(openai_standin.ScriptedReply(
            reasoning=thinking, content=content, finish_reason=done_reason, prompt_tokens=prompt_tokens,
            error_after_chunks=error_after, error_message=error or "an error occurred while generating",
        ))

    def chat(self) -> ChatModel:
        return OpenAIChat(Settings(llm="openai", openai_base_url=self.server.url, model=openai_standin.DEFAULT_MODEL,
                                   llm_timeout_s=10))

    def script_call(self, tool: ToolSpec, arguments: dict[str, Any], thinking: str) -> None:
        self.server.enqueue(openai_standin.ScriptedReply(reasoning=thinking, content="",
                                                         tool_calls=[(tool.name, arguments)]))

    def refuse_tools(self) -> None:
        self.server.refuse_tools = openai_standin.VLLM_WITHOUT_TOOL_PARSER

    def script_malformed_call(self) -> bool:
        self.server.enqueue(openai_standin.ScriptedReply(reasoning="", content="",
                                                         tool_calls=[("search", '{"query": "port"}]')]))
        return False

    def offered(self) -> list[list[str]]:
        return self.server.offered

    def wire_messages(self) -> list[dict[str, Any]]:
        return list(self.server.chat_requests[-1]["messages"])


class ScriptedBackend:
    def __init__(self) -> None:
        self.fake = ScriptedChat()

    def script(self, thinking: str, content: str, done_reason: str = "stop", prompt_tokens: int | None = None,
               error_after: int | None = None, error: str = "") -> None:
        # The fake raises after every piece it was given; a failure mid-reply gets the reasoning only.
        failure = LLMResponseError(f"The fake failed: {error}") if error_after is not None else None
        self.fake.enqueue("" if failure else content, thinking, done_reason=done_reason, prompt_tokens=prompt_tokens,
                          error=failure)

    def chat(self) -> ChatModel:
        return self.fake

    def script_call(self, tool: ToolSpec, arguments: dict[str, Any], thinking: str) -> None:
        self.fake.enqueue("", thinking, tool_calls=[ToolCall(tool.name, arguments, id="call_1")])

    def refuse_tools(self) -> None:
        self.fake.tools = False
        self.fake.enqueue("", error=ToolsUnsupported("The fake takes no tools."))

    def script_malformed_call(self) -> bool:
        self.fake.enqueue("", error=MalformedToolCall("The fake could not read the tool call."))
        return True

    def offered(self) -> list[list[str]]:
        return self.fake.offered

    def wire_messages(self) -> list[dict[str, Any]]:
        return self.fake.history[-1][0]


@pytest.fixture(params=["ollama", "openai", "scripted"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "ollama":
        with ollama_standin.OllamaStandIn() as server:
            yield OllamaBackend(server)
    elif request.param == "openai":
        with openai_standin.OpenAIStandIn() as server:
            yield OpenAIBackend(server)
    else:
        yield ScriptedBackend()


@pytest.fixture
def chat(backend: Backend) -> Iterator[ChatModel]:
    model = backend.chat()
    yield model
    model.close()


def text_of(events: list[StreamEvent]) -> tuple[str, str]:
    deltas = [event for event in events if isinstance(event, Delta)]
    return "".join(d.thinking for d in deltas), "".join(d.content for d in deltas)


def test_reasoning_and_answer_stream_apart_reasoning_first_then_one_usage(backend: Backend, chat: ChatModel) -> None:
    backend.script("Source one says so.", "The port is 11434 [1].", prompt_tokens=321)
    events = list(chat.stream(MESSAGES, "low"))
    thinking, content = text_of(events)
    assert (thinking.strip(), content.strip()) == ("Source one says so.", "The port is 11434 [1].")
    deltas = [event for event in events if isinstance(event, Delta)]
    assert len(deltas) > 2  # streamed in pieces, not as one
    first_answer = next(i for i, d in enumerate(deltas) if d.content)
    assert not any(d.content for d in deltas[:first_answer]) and not any(d.thinking for d in deltas[first_answer:])
    assert [isinstance(event, Usage) for event in events] == [False] * (len(events) - 1) + [True]
    usage = events[-1]
    assert isinstance(usage, Usage) and usage.done_reason == "stop" and usage.prompt_tokens == 321


def test_a_reply_cut_by_the_token_budget_ends_with_length(backend: Backend, chat: ChatModel) -> None:
    backend.script("thinking and thinking", "", done_reason="length")
    events = list(chat.stream(MESSAGES, "high"))
    assert isinstance(events[-1], Usage) and events[-1].done_reason == "length"
    assert text_of(events)[1] == ""


def test_complete_is_the_answer_alone(backend: Backend, chat: ChatModel) -> None:
    backend.script("Reasoning that must not show.", "Port 11434.")
    assert chat.complete(MESSAGES, "low") == "Port 11434."


def test_an_error_mid_reply_is_an_llm_error_after_the_pieces_before_it(backend: Backend, chat: ChatModel) -> None:
    backend.script("Thinking about it.", "Half an answer", error_after=2, error="out of memory")
    events: list[StreamEvent] = []
    with pytest.raises(LLMError, match="out of memory"):
        for event in chat.stream(MESSAGES, "low"):
            events.append(event)
    assert events and all(isinstance(event, Delta) for event in events)  # pieces, but no Usage: it failed


def test_check_passes_and_close_waits_for_the_reply_still_streaming(backend: Backend, chat: ChatModel) -> None:
    chat.check()
    backend.script("", "one two three four")
    events = chat.stream(MESSAGES, "low")
    first = next(events)
    chat.close()
    rest = list(events)
    assert isinstance(first, Delta)
    assert (first.content + text_of(rest)[1]).strip() == "one two three four"
    assert isinstance(rest[-1], Usage) and rest[-1].done_reason == "stop"


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_a_server_that_is_not_there_is_llm_unavailable_naming_where(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    chat: ChatModel = (OllamaChat(load_settings(ollama_host=url)) if kind == "ollama" else
                       OpenAIChat(Settings(llm="openai", openai_base_url=f"{url}/v1", model="m")))
    try:
        for attempt in (chat.check, lambda: list(chat.stream(MESSAGES, "low"))):
            with pytest.raises(LLMUnavailable) as raised:
                attempt()
            assert url in str(raised.value)
    finally:
        chat.close()


def test_an_offered_tool_comes_back_as_a_tool_call_after_the_pieces_and_before_the_usage(
    backend: Backend, chat: ChatModel
) -> None:
    backend.script_call(SEARCH, {"query": "ollama port", "topn": 5}, thinking="I should search the library.")
    events = list(chat.stream(MESSAGES, "low", tools=TOOLS))
    calls = [event for event in events if isinstance(event, ToolCall)]
    assert [(call.name, call.arguments, call.arguments_error) for call in calls] == [
        ("search", {"query": "ollama port", "topn": 5}, "")]  # under the ToolSpec's name, whatever the wire's
    assert text_of(events)[0].strip() == "I should search the library."
    assert isinstance(events[-1], Usage) and isinstance(events[-2], ToolCall)
    assert all(isinstance(event, Delta) for event in events[:-2])


def test_tools_go_by_trained_names_on_ollama_and_plain_names_elsewhere(backend: Backend, chat: ChatModel) -> None:
    list(chat.stream(MESSAGES, "low", tools=TOOLS))
    expected = ["browser.search", "calculate"] if isinstance(backend, OllamaBackend) else ["search", "calculate"]
    assert backend.offered() == [expected]


def test_the_tool_result_reaches_the_server_in_its_wire_form(backend: Backend, chat: ChatModel) -> None:
    backend.script_call(SEARCH, {"query": "ollama port"}, thinking="Search first.")
    call = next(event for event in chat.stream(MESSAGES, "low", tools=TOOLS) if isinstance(event, ToolCall))
    backend.script("Source two says so.", "Port 11434 [2].")
    conversation: list[Message] = [
        *MESSAGES,
        {"role": "assistant", "content": "", "thinking": "Search first.", "tool_calls": [call]},
        {"role": "tool", "name": call.name, "call_id": call.id, "content": RESULT},
    ]
    assert chat.complete(conversation, "low") == "Port 11434 [2]."
    assistant, result = backend.wire_messages()[-2:]
    if isinstance(backend, OllamaBackend):  # by name (the trained one), reasoning sent back, arguments an object
        assert assistant == {"role": "assistant", "thinking": "Search first.",
                             "tool_calls": [{"function": {"name": "browser.search",
                                                         "arguments": {"query": "ollama port"}}}]}
        assert result == {"role": "tool", "content": RESULT, "tool_name": "browser.search"}
    elif isinstance(backend, OpenAIBackend):  # by id, arguments a JSON string
        assert call.id
        wire_call = assistant["tool_calls"][0]
        assert (wire_call["id"], wire_call["type"], wire_call["function"]["name"]) == (call.id, "function", "search")
        assert json.loads(wire_call["function"]["arguments"]) == {"query": "ollama port"}
        assert assistant["role"] == "assistant" and assistant["content"] == ""
        assert assistant["reasoning_content"] == "Search first."
        assert result == {"role": "tool", "tool_call_id": call.id, "content": RESULT}
    else:
        assert result == conversation[-1] and assistant["tool_calls"] == [call]


def test_a_model_without_tools_raises_tools_unsupported(backend: Backend, chat: ChatModel) -> None:
    backend.refuse_tools()
    with pytest.raises(ToolsUnsupported) as raised:
        list(chat.stream(MESSAGES, "low", tools=TOOLS))
    assert str(raised.value)
    if not isinstance(backend, OpenAIBackend):  # Ollama's /api/show says so beforehand; an OpenAI server cannot
        assert chat.supports_tools() is False
    backend.script("", "Port 11434.")
    assert chat.complete(MESSAGES, "low") == "Port 11434."  # without tools the same model answers


def test_a_tool_call_that_is_not_json_is_malformed_tool_call_or_an_arguments_error(
    backend: Backend, chat: ChatModel
) -> None:
    if backend.script_malformed_call():  # the server failed on it (Ollama's HTTP 500)
        with pytest.raises(MalformedToolCall):
            list(chat.stream(MESSAGES, "low", tools=TOOLS))
    else:  # the server passed the text on: the call says what was wrong, for the loop to answer as a tool error
        calls = [event for event in chat.stream(MESSAGES, "low", tools=TOOLS) if isinstance(event, ToolCall)]
        assert len(calls) == 1 and calls[0].name == "search" and calls[0].arguments == {}
        assert "not valid JSON" in calls[0].arguments_error


def test_a_request_without_tools_offers_none(backend: Backend, chat: ChatModel) -> None:
    assert chat.supports_tools() is True
    list(chat.stream(MESSAGES, "low"))
    assert backend.offered() == [[]]
    assert backend.wire_messages() == MESSAGES
