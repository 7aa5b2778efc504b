"""OllamaChat against the Ollama stand-in (a real HTTP server on loopback): what goes over the wire, and
every failure turned into one actionable message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag.errors import LLMResponseError, LLMTimeout, LLMUnavailable, ModelMissing
from rag.llm.chat import INCOMPLETE, Delta, Usage
from rag.llm.ollama import OllamaChat
from rag.settings import load_settings
from tests.conftest import closed_after_the_test
from tests.ollama_standin import OllamaStandIn, ScriptedReply, free_port

MESSAGES = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Which port?"}]


@pytest.fixture
def server() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as standin:
        yield standin


def chat_for(url: str, **overrides: object) -> OllamaChat:
    return closed_after_the_test(OllamaChat(load_settings(ollama_host=url, **overrides)))


def test_reasoning_and_answer_stream_apart_and_usage_comes_last(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="Port is in source one.", content="It is 11434 [1].",
                                 prompt_eval_count=321))
    events = list(chat_for(server.url).stream(MESSAGES, "high"))
    thinking = "".join(e.thinking for e in events if isinstance(e, Delta))
    content = "".join(e.content for e in events if isinstance(e, Delta))
    assert (thinking, content) == ("Port is in source one.", "It is 11434 [1].")
    first_content = next(i for i, e in enumerate(events) if isinstance(e, Delta) and e.content)
    assert all(not e.content for e in events[:first_content] if isinstance(e, Delta))
    assert isinstance(events[-1], Usage) and events[-1].prompt_tokens == 321 and events[-1].done_reason == "stop"
    assert events[-1].completion_tokens is not None and events[-1].completion_tokens > 0


def test_the_request_carries_effort_context_and_sampling(server: OllamaStandIn) -> None:
    list(chat_for(server.url, num_ctx=32768, num_predict=2048).stream(MESSAGES, "low"))
    list(chat_for(server.url, temperature=0.2, top_p=0.9).stream(MESSAGES, "medium"))
    first, second = server.chat_requests
    assert first["think"] == "low" and first["stream"] is True and first["messages"] == MESSAGES
    assert first["options"] == {"num_ctx": 32768, "num_predict": 2048, "temperature": 1.0, "top_p": 1.0}
    assert second["think"] == "medium"
    assert second["options"]["temperature"] == 0.2 and second["options"]["top_p"] == 0.9


def test_running_out_of_tokens_is_reported_as_length(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="loop " * 20, content="", done_reason="length"))
    events = list(chat_for(server.url).stream(MESSAGES, "high"))
    assert isinstance(events[-1], Usage) and events[-1].done_reason == "length"
    assert not any(isinstance(e, Delta) and e.content for e in events)


def test_a_server_that_is_down_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    chat = chat_for(url)
    with pytest.raises(LLMUnavailable, match="ollama serve") as raised:
        list(chat.stream(MESSAGES, "low"))
    assert url in str(raised.value)
    with pytest.raises(LLMUnavailable):
        chat.check()


def test_a_missing_model_says_to_pull_it(server: OllamaStandIn) -> None:
    server.models.clear()
    chat = chat_for(server.url)
    with pytest.raises(ModelMissing, match="ollama pull gpt-oss:20b"):
        list(chat.stream(MESSAGES, "low"))
    with pytest.raises(ModelMissing, match="ollama pull gpt-oss:20b"):
        chat.check()


def test_an_error_line_mid_stream_is_reported_with_the_servers_words(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(content="Half an answer", error_after_chunks=2, error="out of memory"))
    with pytest.raises(LLMResponseError, match="out of memory") as raised:
        list(chat_for(server.url).stream(MESSAGES, "low"))
    assert server.url in str(raised.value)


def test_a_server_too_slow_to_answer_times_out_with_the_setting_to_raise(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(content="late", delay_s=2.0))
    with pytest.raises(LLMTimeout, match="ARCHIVIST_LLM_TIMEOUT_S"):
        list(chat_for(server.url, llm_timeout_s=0.3).stream(MESSAGES, "low"))


def test_check_passes_when_the_model_is_there(server: OllamaStandIn) -> None:
    chat_for(server.url).check()


def test_a_stream_that_ends_without_done_still_ends_with_usage(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="Thinking.", content="The port is 11434", end_without_done=True))
    events = list(chat_for(server.url).stream(MESSAGES, "low"))
    assert "".join(e.content for e in events if isinstance(e, Delta)) == "The port is 11434"
    assert isinstance(events[-1], Usage) and events[-1].done_reason == INCOMPLETE


def test_close_waits_for_the_reply_still_streaming(server: OllamaStandIn) -> None:
    server.enqueue(ScriptedReply(thinking="", content="one two three four"))
    chat = chat_for(server.url)
    events = chat.stream(MESSAGES, "low")
    first = next(events)  # a page session is reading this reply ...
    chat.close()  # ... when the Settings page replaces the client
    rest = list(events)
    assert isinstance(first, Delta) and isinstance(rest[-1], Usage) and rest[-1].done_reason == "stop"
    assert chat._client._client.is_closed  # closed once that reply ended


@pytest.mark.parametrize(("model", "size"), [("gpt-oss:20b", "about 14 GB"), ("gpt-oss:120b", "about 65 GB")])
def test_the_missing_models_message_gives_its_own_download_size(model: str, size: str, server: OllamaStandIn) -> None:
    server.models.clear()
    chat = chat_for(server.url, model=model)
    with pytest.raises(ModelMissing, match=f"ollama pull {model}`") as raised:
        chat.check()
    assert size in str(raised.value) and str(raised.value).count("GB") == 1
