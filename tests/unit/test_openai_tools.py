"""OpenAIChat's tool calls against the OpenAI-compatible stand-in (and a transport for the odd server):
streamed call pieces put together, and the refusals of servers started without tool support."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from rag.errors import LLMResponseError, ToolsUnsupported
from rag.llm.chat import StreamEvent, ToolCall, ToolSpec, Usage
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings
from tests.conftest import closed_after_the_test
from tests.openai_standin import (
    DEFAULT_MODEL,
    LLAMA_CPP_WITHOUT_JINJA,
    VLLM_WITHOUT_TOOL_PARSER,
    OpenAIStandIn,
    ScriptedReply,
)

MESSAGES = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Which port?"}]
SEARCH = ToolSpec("search", "Search the library.", {"type": "object", "properties": {"query": {"type": "string"}}},
                  trained_name="browser.search")
PYTHON = ToolSpec("run_python", "Run Python.", {"type": "object", "properties": {"code": {"type": "string"}}},
                  trained_name="python")


@pytest.fixture
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as standin:
        yield standin


def chat_for(url: str) -> OpenAIChat:
    return closed_after_the_test(OpenAIChat(Settings(llm="openai", openai_base_url=url, model=DEFAULT_MODEL,
                                                     llm_timeout_s=10)))


def calls_in(events: list[StreamEvent]) -> list[ToolCall]:
    return [event for event in events if isinstance(event, ToolCall)]


def test_plain_names_go_out_never_trained_ones(server: OpenAIStandIn) -> None:
    list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH, PYTHON]))
    assert server.offered == [["search", "run_python"]]
    assert server.chat_requests[0]["tools"][0] == {
        "type": "function", "function": {"name": "search", "description": "Search the library.",
                                         "parameters": SEARCH.parameters}}


def test_calls_are_put_together_from_their_fragments_by_index(server: OpenAIStandIn) -> None:
    code = 'print((4350 - 3975) / 3975)\nprint("done")'
    server.enqueue(ScriptedReply(reasoning="Compute it.", content="",
                                 tool_calls=[("run_python", {"code": code}), ("search", {"query": "revenue 2023"})]))
    events = list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH, PYTHON]))
    calls = calls_in(events)
    assert [(c.name, c.arguments, c.arguments_error) for c in calls] == [
        ("run_python", {"code": code}, ""), ("search", {"query": "revenue 2023"}, "")]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    assert isinstance(events[-1], Usage) and events[-1].done_reason == "stop"  # finish_reason "tool_calls"


def test_arguments_that_are_json_but_not_an_object_are_an_arguments_error(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(reasoning="", content="", tool_calls=[("search", '["revenue"]')]))
    [call] = calls_in(list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH])))
    assert call.arguments == {} and "not a JSON object" in call.arguments_error


def test_a_call_without_id_or_arguments_gets_an_id_and_empty_arguments() -> None:
    # Some servers send neither an id nor any argument text for a call that takes none.
    lines = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "search"}}]}}]},
             {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
    body = "".join(f"data: {json.dumps(line)}\n\n" for line in lines) + "data: [DONE]\n\n"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text=body))
    chat = closed_after_the_test(OpenAIChat(Settings(llm="openai", openai_base_url="http://llm.invalid/v1",
                                                     model="m"), transport=transport))
    [call] = calls_in(list(chat.stream(MESSAGES, "low", tools=[SEARCH])))
    assert (call.name, call.arguments, call.id, call.arguments_error) == ("search", {}, "call_0", "")


@pytest.mark.parametrize("refusal", [VLLM_WITHOUT_TOOL_PARSER, LLAMA_CPP_WITHOUT_JINJA], ids=["vllm", "llama.cpp"])
def test_a_server_started_without_tool_support_is_tools_unsupported(refusal: tuple[int, dict[str, object]]) -> None:
    with OpenAIStandIn(refuse_tools=refusal) as server:
        chat = chat_for(server.url)
        with pytest.raises(ToolsUnsupported) as raised:
            list(chat.stream(MESSAGES, "low", tools=[SEARCH]))
        assert "--jinja" in str(raised.value) and "--enable-auto-tool-choice" in str(raised.value)
        assert chat.complete(MESSAGES, "low")  # the same server answers without tools


def test_an_error_that_does_not_mention_tools_stays_a_response_error(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(status=500, error_message="CUDA out of memory"))
    with pytest.raises(LLMResponseError) as raised:
        list(chat_for(server.url).stream(MESSAGES, "low", tools=[SEARCH]))
    assert not isinstance(raised.value, ToolsUnsupported) and "CUDA out of memory" in str(raised.value)


def test_the_assistant_turn_goes_back_with_its_reasoning_under_both_names(server: OpenAIStandIn) -> None:
    call = ToolCall("search", {"query": "ä port"}, id="call_7")
    history = [*MESSAGES, {"role": "assistant", "content": "", "thinking": "Look it up.", "tool_calls": [call]},
               {"role": "tool", "name": "search", "call_id": "call_7", "content": "[2] a.txt\n<source>\nX.\n</source>"}]
    list(chat_for(server.url).stream(history, "low", tools=[SEARCH]))
    assistant = server.chat_requests[0]["messages"][2]
    # llama.cpp's server reads reasoning_content, vLLM's harmony input parser `reasoning`.
    assert assistant == {"role": "assistant", "content": "", "reasoning_content": "Look it up.",
                         "reasoning": "Look it up.",
                         "tool_calls": [{"id": "call_7", "type": "function",
                                         "function": {"name": "search", "arguments": '{"query": "ä port"}'}}]}
