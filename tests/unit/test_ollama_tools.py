"""OllamaChat's tool calls against the Ollama stand-in: what the wire carries that the shared contract
(tests/contract/test_chat_contract.py) does not pin down."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from rag.errors import LLMResponseError, MalformedToolCall, ToolsUnsupported
from rag.llm.chat import Delta, ToolCall, ToolSpec, Usage
from rag.llm.ollama import OllamaChat
from rag.settings import load_settings
from tests.conftest import closed_after_the_test
from tests.ollama_standin import MALFORMED_TOOL_CALL, OllamaStandIn, ScriptedReply, free_port

MESSAGES = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Which port?"}]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["query"],
          "properties": {"query": {"type": "string", "description": "what to look for", "minLength": 1},
                         "filters": {"type": "object", "description": "where to look",
                                     "properties": {"folder": {"type": "string"}}, "required": ["folder"]}}}
SEARCH = ToolSpec("search", "Search the library.", SCHEMA, trained_name="browser.search")


@pytest.fixture
def server() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as standin:
        yield standin


def chat_for(url: str) -> OllamaChat:
    return closed_after_the_test(OllamaChat(load_settings(ollama_host=url)))


def test_a_request_without_tools_is_byte_for_byte_what_the_official_client_sends(server: OllamaStandIn) -> None:
    history = [*MESSAGES, {"role": "assistant", "content": "Earlier answer.", "thinking": "Earlier."},
               {"role": "user", "content": "And the other port?"}]
    list(chat_for(server.url).stream(history, "low"))
    chat = chat_for(server.url)
    client = closed_after_the_test(ollama.Client(host=server.url, timeout=chat.settings.llm_timeout_s))
    list(client.chat(model=chat.model, messages=history, stream=True, think="low", options=chat.options(),
                     keep_alive="10m"))
    ours, official = (request.raw for request in server.requests if request.path == "/api/chat")
    assert ours == official


def test_tools_go_with_their_whole_schema(server: OllamaStandIn) -> None:
    # ollama-python's Tool model would drop `filters.properties`, `minLength` and `additionalProperties`.
    list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]))
    assert server.chat_requests[0]["tools"] == [
        {"type": "function", "function": {"name": "browser.search", "description": "Search the library.",
                                          "parameters": SCHEMA}}]


def test_calls_in_a_chunk_of_their_own_are_collected_too(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="Two searches.", content="", tool_calls_in_final=False,
                                 tool_calls=[("browser.search", {"query": "a"}), ("browser.search", {"query": "b"})]))
    events = list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]))
    assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCall)] == [
        ("search", {"query": "a"}), ("search", {"query": "b"})]
    assert isinstance(events[-1], Usage)


def test_arguments_that_are_not_an_object_are_an_arguments_error(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="", content="", tool_calls=[("browser.search", "print(1)")]))
    [call] = [e for e in chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]) if isinstance(e, ToolCall)]
    assert call.name == "search" and call.arguments == {} and "not a JSON object" in call.arguments_error


def test_a_name_nobody_offered_comes_back_as_the_model_wrote_it(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="", content="", tool_calls=[("browser.open", {"id": 3})]))
    [call] = [e for e in chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]) if isinstance(e, ToolCall)]
    assert (call.name, call.arguments) == ("browser.open", {"id": 3})


def test_a_parse_error_after_the_reasoning_streamed_is_malformed_tool_call(server: OllamaStandIn) -> None:
    # Once reasoning has gone out, Ollama can only report the parser's failure as an error line (status -1).
    server.enqueue(ScriptedReply(thinking="I will search now.", content="", error_after_chunks=3,
                                 error=MALFORMED_TOOL_CALL))
    events: list[object] = []
    with pytest.raises(MalformedToolCall, match="error parsing tool call"):
        events.extend(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]))
    assert len(events) == 3 and all(isinstance(e, Delta) for e in events)


def test_the_no_tools_400_names_the_model_and_what_happens_instead() -> None:
    with OllamaStandIn(models={"llama2"}, without_tools={"llama2"}) as server:
        chat = closed_after_the_test(OllamaChat(load_settings(ollama_host=server.url, model="llama2")))
        with pytest.raises(ToolsUnsupported) as raised:
            list(chat.stream(MESSAGES, "low", tools=[SEARCH]))
    message = str(raised.value)
    assert "llama2" in message and "registry.ollama.ai/library/llama2:latest does not support tools" in message
    assert "one step" in message
    assert chat.supports_tools() is False  # learnt from the refusal, without asking /api/show
    assert not any(request.path == "/api/show" for request in server.requests)


def test_a_400_without_tools_offered_is_not_tools_unsupported(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(status=400, error='"gpt-oss:20b" does not support tools'))
    with pytest.raises(LLMResponseError) as raised:
        list(chat_for(server.url).stream(MESSAGES, "low"))
    assert not isinstance(raised.value, ToolsUnsupported)


def test_supports_tools_asks_show_once_and_assumes_yes_when_it_cannot_ask(server: OllamaStandIn) -> None:
    chat = chat_for(server.url)
    assert chat.supports_tools() is True and chat.supports_tools() is True
    assert sum(request.path == "/api/show" for request in server.requests) == 1
    with OllamaStandIn(without_tools={"gpt-oss:20b"}) as plain:
        assert chat_for(plain.url).supports_tools() is False
    assert chat_for(f"http://127.0.0.1:{free_port()}").supports_tools() is True  # nobody there to ask


def test_earlier_calls_keep_their_trained_name_on_a_request_without_tools(server: OllamaStandIn) -> None:
    chat = chat_for(server.url)
    server.enqueue(ScriptedReply(thinking="", content="", tool_calls=[("browser.search", {"query": "port"})]))
    [call] = [e for e in chat.stream(MESSAGES, "low", tools=[SEARCH]) if isinstance(e, ToolCall)]
    final = [*MESSAGES, {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "name": "search", "call_id": "", "content": "nothing found"}]
    list(chat.stream(final, "low"))  # the step cap reached: the last request offers no tools
    last = server.chat_requests[-1]
    assert "tools" not in last or last["tools"] == []
    assert last["messages"][-2]["tool_calls"][0]["function"]["name"] == "browser.search"
    assert last["messages"][-1]["tool_name"] == "browser.search"
