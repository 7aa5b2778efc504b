"""Tests of the Ollama stand-in, driven through the official `ollama` client and raw HTTP."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import httpx
import ollama
import pytest

from tests.ollama_standin import (
    NO_SOURCE_ANSWER,
    OllamaStandIn,
    ScriptedReply,
    free_port,
    split_tokens,
)

MODEL = "gpt-oss:20b"
QUESTION = [{"role": "user", "content": "Which port does Ollama use?"}]


@pytest.fixture
def server() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as standin:
        yield standin


@pytest.fixture
def client(server: OllamaStandIn) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url, timeout=10) as c:
        yield c


def chat_stream(
    client: ollama.Client, messages: list[dict[str, str]] = QUESTION
) -> Iterator[ollama.ChatResponse]:
    """Stream a chat the way Archivist does: low reasoning and an explicit context size."""
    return client.chat(model=MODEL, messages=messages, stream=True, think="low", options={"num_ctx": 8192})


def test_stream_sends_thinking_before_content_and_ends_with_stats(
    server: OllamaStandIn, client: ollama.Client
) -> None:
    server.enqueue(ScriptedReply(thinking="We check source one.", content="Port 11434 [1]"))

    chunks = list(chat_stream(client))

    kinds = ["thinking" if c.message.thinking else "content" for c in chunks[:-1]]
    assert kinds == ["thinking"] * 4 + ["content"] * 3
    assert all(not c.message.content for c in chunks if c.message.thinking)
    assert all(not c.message.thinking for c in chunks if c.message.content)
    assert "".join(c.message.thinking or "" for c in chunks) == "We check source one."
    assert "".join(c.message.content for c in chunks) == "Port 11434 [1]"
    last = chunks[-1]
    assert [c.done for c in chunks] == [False] * 7 + [True]
    assert last.done_reason == "stop"
    assert last.eval_count == 7
    assert last.prompt_eval_count == len("Which port does Ollama use?") // 4
    # Wire format only (speed is bench/'s): Ollama's final line carries these counters as integers (nanoseconds).
    assert all(isinstance(n, int) for n in (last.total_duration, last.eval_duration, last.load_duration))


def test_request_is_recorded_with_think_options_and_messages(
    server: OllamaStandIn, client: ollama.Client
) -> None:
    list(chat_stream(client))

    (body,) = server.chat_requests
    assert body["model"] == MODEL
    assert body["think"] == "low"
    assert body["options"] == {"num_ctx": 8192}
    assert body["messages"] == QUESTION
    assert body["stream"] is True
    (recorded,) = server.requests
    assert (recorded.method, recorded.path) == ("POST", "/api/chat")
    assert recorded.headers["content-type"] == "application/json"


def test_wire_format_is_ndjson_with_ollamas_exact_keys(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="Hmm", content="Yes"))
    payload = {"model": MODEL, "messages": QUESTION, "think": "low"}

    with httpx.Client() as http, http.stream("POST", f"{server.url}/api/chat", json=payload) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [json.loads(line) for line in response.iter_lines()]

    thinking, content, final = lines
    assert thinking["message"] == {"role": "assistant", "content": "", "thinking": "Hmm"}
    assert content["message"] == {"role": "assistant", "content": "Yes"}
    assert set(thinking) == set(content) == {"model", "created_at", "message", "done"}
    assert thinking["created_at"].endswith("Z")
    assert final["message"] == {"role": "assistant", "content": ""}
    assert set(final) == {"model", "created_at", "message", "done", "done_reason", "total_duration",
                          "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                          "eval_duration"}


def test_non_streaming_chat_returns_the_whole_message(server: OllamaStandIn, client: ollama.Client) -> None:
    server.enqueue(ScriptedReply(thinking="Easy.", content="Port 11434 [1]", prompt_eval_count=321))

    response = client.chat(model=MODEL, messages=QUESTION, stream=False, think="low",
                           options={"num_ctx": 8192})

    assert response.message.thinking == "Easy."
    assert response.message.content == "Port 11434 [1]"
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.prompt_eval_count == 321
    assert server.chat_requests[0]["stream"] is False


def test_truncated_answer_reports_length_with_empty_content(
    server: OllamaStandIn, client: ollama.Client
) -> None:
    server.enqueue(ScriptedReply(thinking="Thinking on and on", content="", done_reason="length"))

    chunks = list(chat_stream(client))

    assert "".join(c.message.content for c in chunks) == ""
    assert chunks[-1].done_reason == "length"


def test_missing_model_is_a_404_with_ollamas_message(server: OllamaStandIn, client: ollama.Client) -> None:
    server.models.discard(MODEL)

    with pytest.raises(ollama.ResponseError) as streaming:
        list(chat_stream(client))
    with pytest.raises(ollama.ResponseError) as blocking:
        client.chat(model=MODEL, messages=QUESTION, stream=False)

    for error in (streaming.value, blocking.value):
        assert error.status_code == 404
        assert error.error == "model 'gpt-oss:20b' not found"
    response = httpx.post(f"{server.url}/api/chat", json={"model": MODEL, "messages": QUESTION})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'gpt-oss:20b' not found"}


def test_error_line_mid_stream_raises_after_the_first_chunks(
    server: OllamaStandIn, client: ollama.Client
) -> None:
    server.enqueue(ScriptedReply(thinking="one two three four", error_after_chunks=2, error="model crashed"))
    received: list[ollama.ChatResponse] = []

    with pytest.raises(ollama.ResponseError) as caught:
        for chunk in chat_stream(client):
            received.append(chunk)

    assert [c.message.thinking for c in received] == ["one", " two"]
    assert caught.value.status_code == -1
    assert caught.value.error == "model crashed"


def test_after_stop_connections_are_refused(server: OllamaStandIn) -> None:
    server.stop()

    with ollama.Client(host=server.url, timeout=10) as client:
        stream = chat_stream(client)
        with pytest.raises(httpx.ConnectError):
            next(stream)
        with pytest.raises(ConnectionError):
            client.chat(model=MODEL, messages=QUESTION)
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", server.port))


def test_stop_cuts_off_a_stream_in_progress(server: OllamaStandIn, client: ollama.Client) -> None:
    # At 50 ms a chunk this stream would take 10 s; stop() must not wait for it.
    server.enqueue(ScriptedReply(content="word " * 200, delay_s=0.05))
    stream = chat_stream(client)
    next(stream)

    server.stop()

    with pytest.raises(httpx.RemoteProtocolError):
        for _ in stream:
            pass


def test_start_after_stop_serves_again_on_the_same_port(server: OllamaStandIn) -> None:
    url = server.url
    server.stop()
    server.start()

    assert server.url == url
    assert httpx.get(f"{url}/api/version").json() == {"version": "0.12.6"}


def test_list_show_version_and_root(server: OllamaStandIn, client: ollama.Client) -> None:
    (model,) = client.list().models
    assert model.model == MODEL
    assert model.details is not None and model.details.family == "gptoss"

    shown = client.show(MODEL)
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert shown.modelinfo is not None and shown.modelinfo["gptoss.context_length"] == 131072
    assert shown.details is not None and shown.details.family == "gptoss"
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("gpt-oss:120b")
    assert (missing.value.status_code, missing.value.error) == (404, "model 'gpt-oss:120b' not found")

    assert httpx.get(f"{server.url}/api/version").json() == {"version": "0.12.6"}
    assert httpx.get(f"{server.url}/").text == "Ollama is running"
    assert httpx.get(f"{server.url}/api/nope").status_code == 404


def test_default_responder_cites_the_first_source(server: OllamaStandIn, client: ollama.Client) -> None:
    prompt = ("Context:\n[1] Ollama listens on port 11434. It binds to localhost.\n"
              "[2] Chroma stores vectors.\n\nQuestion: Which port does Ollama use?")
    messages = [{"role": "system", "content": "Answer only from the context."},
                {"role": "user", "content": prompt}]

    chunks = list(chat_stream(client, messages))

    assert "".join(c.message.content for c in chunks) == "Ollama listens on port 11434. [1]"
    thinking = "".join(c.message.thinking or "" for c in chunks)
    assert "Which port does Ollama use?" in thinking and "source [1]" in thinking


def test_default_responder_skips_the_label_line_of_a_source(
    server: OllamaStandIn, client: ollama.Client
) -> None:
    prompt = ("Sources:\n\n[1] setup.pdf, p. 3\nOllama listens on port 11434. It binds to localhost.\n\n"
              "[2] notes.md, p. 1\nChroma stores vectors.\n\nQuestion: Which port?")

    chunks = list(chat_stream(client, [{"role": "user", "content": prompt}]))

    assert "".join(c.message.content for c in chunks) == "Ollama listens on port 11434. [1]"


def test_default_responder_without_sources_says_so(client: ollama.Client) -> None:
    chunks = list(chat_stream(client))

    assert "".join(c.message.content for c in chunks) == NO_SOURCE_ANSWER


def test_queue_first_then_responder(server: OllamaStandIn, client: ollama.Client) -> None:
    server.enqueue(ScriptedReply(content="first"), ScriptedReply(content="second"))
    server.responder = lambda request: ScriptedReply(content=f"{len(request['messages'])} messages")

    answers = [client.chat(model=MODEL, messages=QUESTION).message.content for _ in range(3)]

    assert answers == ["first", "second", "1 messages"]


def test_concurrent_chats_are_all_recorded(server: OllamaStandIn) -> None:
    def ask(n: int) -> None:
        with ollama.Client(host=server.url, timeout=10) as c:
            list(chat_stream(c, [{"role": "user", "content": f"question {n}"}]))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    asked = sorted(body["messages"][0]["content"] for body in server.chat_requests)
    assert asked == sorted(f"question {n}" for n in range(8))


def test_split_tokens_round_trips() -> None:
    text = "  Two words,\nthen more.  "
    assert "".join(split_tokens(text)) == text
    assert split_tokens("a b") == ["a", " b"]


def test_free_port_has_nobody_listening() -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", free_port()))
