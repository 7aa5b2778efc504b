"""The LLM stand-ins' tool calls on the wire, read with plain HTTP (not our clients), and their default
behaviour when tools are offered: search for the question first, then answer from the latest tool result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ollama_standin import DEFAULT_MODEL, OllamaStandIn, ScriptedReply, default_responder
from tests.openai_standin import OpenAIStandIn
from tests.openai_standin import ScriptedReply as OpenAIReply

SEARCH_TOOL = {"type": "function", "function": {"name": "browser.search", "description": "Search.",
                                                "parameters": {"type": "object", "properties": {}}}}
PROMPT = "[1] intro.txt — p. 1\n<source>\nThe library has two reports. Nothing more.\n</source>\n\n" \
         "Question: How much memory does gpt-oss-120b need?"
RESULT = "[7] modelos.pdf — p. 3 (Requisitos)\n<source>\nNecesita de 60 GB a 80 GB. Otra frase.\n</source>\n\n" \
         "[8] other.txt — p. 1\n<source>\nUnrelated.\n</source>"


@pytest.fixture
def ollama_server() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as standin:
        yield standin


def ndjson(server: OllamaStandIn, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.url}/api/chat", json={"model": DEFAULT_MODEL, **body}, timeout=10)
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_ollama_sends_the_call_in_the_final_chunk_after_the_thinking(ollama_server: OllamaStandIn) -> None:
    ollama_server.enqueue(ScriptedReply(thinking="Search it.", content="",
                                        tool_calls=[("browser.search", {"query": "memoria"})]))
    lines = ndjson(ollama_server, {"messages": [{"role": "user", "content": "x"}], "tools": [SEARCH_TOOL]})
    assert "".join(line["message"].get("thinking", "") for line in lines) == "Search it."
    final = lines[-1]
    assert final["done"] is True and final["message"]["tool_calls"][0]["function"] == {
        "index": 0, "name": "browser.search", "arguments": {"query": "memoria"}}
    assert not any("tool_calls" in line["message"] for line in lines[:-1])
    assert ollama_server.offered == [["browser.search"]]


def test_the_default_gpt_oss_searches_for_the_question_then_cites_the_result() -> None:
    asking = {"messages": [{"role": "system", "content": "Rules."}, {"role": "user", "content": PROMPT}],
              "tools": [SEARCH_TOOL]}
    first = default_responder(asking)
    assert first.tool_calls == [("browser.search", {"query": "How much memory does gpt-oss-120b need?"})]
    assert first.content == "" and first.thinking
    answered = {**asking, "messages": [*asking["messages"],
                                       {"role": "assistant", "content": "", "tool_calls": []},
                                       {"role": "tool", "tool_name": "browser.search", "content": "nothing"},
                                       {"role": "tool", "tool_name": "browser.search", "content": RESULT}]}
    second = default_responder(answered)
    assert (second.tool_calls, second.content) == ([], "Necesita de 60 GB a 80 GB. [7]")
    # a latest result without sources: the answer comes from the question's own sources
    no_source = {**answered, "messages": [*answered["messages"][:-1]]}
    assert default_responder(no_source).content == "The library has two reports. [1]"
    # without tools it answers at once, as before
    assert default_responder({"messages": asking["messages"]}).content == "The library has two reports. [1]"


def test_a_new_question_after_earlier_results_is_searched_again() -> None:
    earlier = [{"role": "user", "content": "First?"}, {"role": "tool", "content": RESULT},
               {"role": "assistant", "content": "An answer [7]."}, {"role": "user", "content": "Second question?"}]
    reply = default_responder({"messages": earlier, "tools": [SEARCH_TOOL]})
    assert reply.tool_calls == [("browser.search", {"query": "Second question?"})]


def test_only_a_tool_whose_name_says_search_is_called() -> None:
    calc = {"type": "function", "function": {"name": "python", "parameters": {}}}
    reply = default_responder({"messages": [{"role": "user", "content": PROMPT}], "tools": [calc]})
    assert reply.tool_calls == [] and reply.content.endswith("[1]")


def test_openai_streams_the_call_in_fragments_with_index_id_and_type() -> None:
    with OpenAIStandIn() as server:
        server.enqueue(OpenAIReply(reasoning="Search it.", content="",
                                   tool_calls=[("search", {"query": "a long enough query to split"})]))
        response = httpx.post(f"{server.url}/chat/completions", timeout=10, json={
            "model": server.models[0], "stream": True, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "search", "parameters": {}}}]})
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert pieces[0]["index"] == 0 and pieces[0]["type"] == "function" and pieces[0]["id"].startswith("call_")
    assert pieces[0]["function"]["name"] == "search"
    fragments = [p["function"]["arguments"] for p in pieces]
    assert len([f for f in fragments if f]) > 2 and json.loads("".join(fragments)) == {
        "query": "a long enough query to split"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert server.offered == [["search"]]


def test_the_default_openai_responder_searches_too() -> None:
    with OpenAIStandIn() as server:
        response = httpx.post(f"{server.url}/chat/completions", timeout=10, json={
            "model": server.models[0], "stream": False, "messages": [{"role": "user", "content": PROMPT}],
            "tools": [{"type": "function", "function": {"name": "search", "parameters": {}}}]})
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "search"
    assert json.loads(call["function"]["arguments"]) == {"query": "How much memory does gpt-oss-120b need?"}
