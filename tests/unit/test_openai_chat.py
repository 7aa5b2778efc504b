"""OpenAIChat against the OpenAI-compatible stand-in on a real port, and its SSE parsing on edge cases."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from rag.errors import LLMResponseError, LLMTimeout, LLMUnavailable, ModelMissing
from rag.factory import make_chat
from rag.llm.chat import INCOMPLETE, Delta, StreamEvent, Usage
from rag.llm.ollama import OllamaChat
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings, load_settings
from tests.conftest import closed_after_the_test
from tests.ollama_standin import free_port
from tests.openai_standin import DEFAULT_MODEL, OpenAIStandIn, ScriptedReply

MESSAGES = [
    {"role": "system", "content": "Answer only from the sources."},
    {"role": "user", "content": "[1] Ollama listens on port 11434.\n\nQuestion: Which port does Ollama use?"},
]



@pytest.fixture
def server() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as standin:
        yield standin


def settings_for(url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"llm": "openai", "openai_base_url": url, "model": DEFAULT_MODEL,
                                 "temperature": 0.7, "top_p": 0.9, "num_predict": 512, "llm_timeout_s": 10}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def chat_for(server: OpenAIStandIn, **overrides: object) -> OpenAIChat:
    return closed_after_the_test(OpenAIChat(settings_for(server.url, **overrides)))


def collect(chat: OpenAIChat, effort: str = "low") -> tuple[str, str, list[StreamEvent]]:
    events = list(chat.stream(MESSAGES, effort))  # type: ignore[arg-type]
    thinking = "".join(e.thinking for e in events if isinstance(e, Delta))
    content = "".join(e.content for e in events if isinstance(e, Delta))
    return thinking, content, events


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_streams_reasoning_apart_from_the_answer_then_one_usage(server: OpenAIStandIn, field: str) -> None:
    server.enqueue(ScriptedReply(reasoning="Source one says so.", content="Port 11434 [1]", reasoning_field=field,
                                 prompt_tokens=321))

    thinking, content, events = collect(chat_for(server))

    assert thinking == "Source one says so."
    assert content == "Port 11434 [1]"
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [bool(d.thinking) for d in deltas] == [True] * 4 + [False] * 3  # reasoning first, then the answer
    assert events[-1] == Usage(prompt_tokens=321, completion_tokens=7, done_reason="stop")
    assert sum(isinstance(e, Usage) for e in events) == 1


def test_request_carries_effort_sampling_budget_and_usage_option(server: OpenAIStandIn) -> None:
    collect(chat_for(server), effort="high")

    (body,) = server.chat_requests
    assert body == {
        "model": DEFAULT_MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "high",
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 512,
    }
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert "authorization" not in request.headers


def test_api_key_goes_in_a_bearer_header() -> None:
    with OpenAIStandIn(api_key="sk-local") as server:
        _, content, _ = collect(chat_for(server, openai_api_key="sk-local"))
        assert content
        assert server.requests[-1].headers["authorization"] == "Bearer sk-local"


def test_a_refused_key_names_the_setting() -> None:
    with OpenAIStandIn(api_key="sk-local") as server, pytest.raises(LLMResponseError) as caught:
        collect(chat_for(server, openai_api_key="wrong"))
    assert "401" in str(caught.value) and "Incorrect API key provided" in str(caught.value)
    assert "ARCHIVIST_OPENAI_API_KEY" in str(caught.value)


def test_length_finish_becomes_done_reason_length(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(reasoning="Thinking and thinking", content="", finish_reason="length"))

    _, content, events = collect(chat_for(server))

    assert content == ""
    assert isinstance(events[-1], Usage) and events[-1].done_reason == "length"


def test_a_server_that_reports_no_usage_still_ends_with_one_usage(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(content="Fine.", send_usage=False))

    _, _, events = collect(chat_for(server))

    assert events[-1] == Usage(None, None, "stop")


def test_unknown_model_is_model_missing_listing_what_is_served() -> None:
    with OpenAIStandIn(models=["openai/gpt-oss-20b"]) as server, pytest.raises(ModelMissing) as caught:
        collect(chat_for(server, model="openai/gpt-oss-120b"))
    message = str(caught.value)
    assert "does not serve the model openai/gpt-oss-120b" in message
    assert "The model `openai/gpt-oss-120b` does not exist" in message  # the server's own words
    assert "It serves: openai/gpt-oss-20b" in message and "ARCHIVIST_MODEL" in message


def test_context_overflow_quotes_the_server_and_says_what_to_change(server: OpenAIStandIn) -> None:
    # llama.cpp's server, verbatim
    server.enqueue(ScriptedReply(status=400, error_type="exceed_context_size_error", error_code=400,
                                 error_message="the request exceeds the available context size, try increasing it"))

    with pytest.raises(LLMResponseError) as caught:
        collect(chat_for(server))

    message = str(caught.value)
    assert f"The server at {server.url} answered 400: the request exceeds the available context size" in message
    assert "ARCHIVIST_NUM_CTX" in message and "--ctx-size" in message


def test_server_error_status_quotes_the_message(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(status=500, error_message="CUDA out of memory", error_type="InternalServerError"))

    with pytest.raises(LLMResponseError, match=r"answered 500: CUDA out of memory"):
        collect(chat_for(server))


def test_an_error_mid_stream_is_a_response_error_after_the_pieces_so_far(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(reasoning="one two three", error_after_chunks=3, error_message="engine died"))
    received: list[StreamEvent] = []

    with pytest.raises(LLMResponseError) as caught:
        received.extend(chat_for(server).stream(MESSAGES, "low"))

    assert str(caught.value) == f"The server at {server.url} failed while answering: engine died"
    assert [e.thinking for e in received if isinstance(e, Delta)] == ["one", " two"]


def test_a_base_url_without_v1_says_so(server: OpenAIStandIn) -> None:
    with pytest.raises(LLMResponseError) as caught:
        collect(chat_for(server, openai_base_url=server.url.removesuffix("/v1")))
    assert "404" in str(caught.value) and "up to and including /v1" in str(caught.value)


def test_server_down_names_the_url_and_the_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    chat = closed_after_the_test(OpenAIChat(settings_for(url)))

    for attempt in (chat.check, lambda: collect(chat)):
        with pytest.raises(LLMUnavailable) as caught:
            attempt()
        assert f"No OpenAI-compatible server is reachable at {url}" in str(caught.value)
        assert "ARCHIVIST_OPENAI_BASE_URL" in str(caught.value)


def test_server_stopping_mid_reply_is_a_response_error() -> None:
    with OpenAIStandIn(chunk_delay_s=0.05) as server:
        events = closed_after_the_test(OpenAIChat(settings_for(server.url))).stream(MESSAGES, "low")
        next(events)
        server.stop()
        with pytest.raises(LLMResponseError, match=r"connection to the server at .* failed"):
            list(events)


def test_slow_server_is_a_timeout_naming_the_setting(server: OpenAIStandIn) -> None:
    server.enqueue(ScriptedReply(delay_s=2.0))

    with pytest.raises(LLMTimeout) as caught:
        collect(chat_for(server, llm_timeout_s=0.2))

    assert f"The server at {server.url} did not answer within 0.2 s" in str(caught.value)
    assert "ARCHIVIST_LLM_TIMEOUT_S" in str(caught.value)


def test_check_passes_when_the_model_is_served(server: OpenAIStandIn) -> None:
    chat_for(server).check()
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


def test_check_names_the_served_models_when_ours_is_not_among_several() -> None:
    with OpenAIStandIn(models=["qwen3-8b", "openai/gpt-oss-20b"]) as server, pytest.raises(ModelMissing) as caught:
        chat_for(server).check()
    assert "It serves: qwen3-8b, openai/gpt-oss-20b" in str(caught.value)


def test_check_accepts_a_single_model_server_under_its_own_name() -> None:
    # llama.cpp's server names its one model after the file and answers any name with it
    with OpenAIStandIn(models=["SmolLM2-135M-Instruct.Q4_1.gguf"], strict_models=False) as server:
        chat = chat_for(server)
        chat.check()
        _, content, _ = collect(chat)
    assert content


# SSE details that the stand-in does not produce, through httpx's MockTransport.


def sse(*lines: str) -> httpx.MockTransport:
    body = "".join(lines).encode()
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body,
                                                              headers={"content-type": "text/event-stream"}))


def chunk(delta: dict[str, object] | None = None, finish: str | None = None, **extra: object) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return f"data: {json.dumps({'choices': choices, **extra})}\n\n"


def mock_chat(transport: httpx.MockTransport) -> OpenAIChat:
    return closed_after_the_test(OpenAIChat(settings_for("http://llm.invalid/v1"), transport=transport))


def test_llama_cpp_style_usage_with_the_finish_chunk_and_comment_lines() -> None:
    transport = sse(": ping\n\n", chunk({"reasoning_content": "Hm."}), chunk({"content": "Yes."}),
                    chunk({}, "stop", usage={"prompt_tokens": 12, "completion_tokens": 3}), "data: [DONE]\n\n")

    events = list(mock_chat(transport).stream(MESSAGES, "low"))

    assert events == [Delta(thinking="Hm."), Delta(content="Yes."), Usage(12, 3, "stop")]


def test_both_reasoning_names_in_one_delta_are_not_doubled() -> None:
    transport = sse(chunk({"reasoning": "Once.", "reasoning_content": "Once."}), chunk({}, "stop"), "data: [DONE]\n\n")

    events = list(mock_chat(transport).stream(MESSAGES, "low"))

    assert events == [Delta(thinking="Once."), Usage(None, None, "stop")]


@pytest.mark.parametrize("line", [
    'data: {"object":"error","message":"engine dead","type":"InternalServerError","code":500}\n\n',  # older vLLM
    'event: error\ndata: {"message":"engine dead"}\n\n',
    'data: {"error":"engine dead"}\n\n',
])
def test_error_events_in_other_shapes(line: str) -> None:
    transport = sse(chunk({"content": "Par"}), line)

    with pytest.raises(LLMResponseError, match=r"failed while answering: engine dead$"):
        list(mock_chat(transport).stream(MESSAGES, "low"))


def test_a_stream_that_just_stops_keeps_its_text_and_says_so_in_usage() -> None:
    events = list(mock_chat(sse(chunk({"content": "Par"}))).stream(MESSAGES, "low"))
    assert [e.content for e in events if isinstance(e, Delta)] == ["Par"]
    assert isinstance(events[-1], Usage) and events[-1].done_reason == INCOMPLETE


def test_a_line_that_is_not_json_is_an_error() -> None:
    with pytest.raises(LLMResponseError, match="not JSON"):
        list(mock_chat(sse("data: <html>\n\n")).stream(MESSAGES, "low"))


def test_make_chat_picks_the_backend_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(closed_after_the_test(make_chat(Settings())), OllamaChat)
    monkeypatch.setenv("ARCHIVIST_LLM", "openai")
    monkeypatch.setenv("ARCHIVIST_OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/")
    chat = closed_after_the_test(make_chat(load_settings()))
    assert isinstance(chat, OpenAIChat)
    assert chat.where == "http://127.0.0.1:8080/v1"
