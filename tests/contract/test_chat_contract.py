"""The ChatModel contract, run against every implementation: the Ollama client against the Ollama stand-in,
the OpenAI-compatible client against its stand-in (both real HTTP servers on loopback), and ScriptedChat.

What every chat backend promises (rag/llm/chat.py): a reply streams as Deltas that keep reasoning (`thinking`) and
answer (`content`) apart, reasoning first; every stream ends with exactly one Usage, which carries what the
server reported (prompt tokens, "stop" or "length"); `complete` is the answer text alone; every failure is an
LLMError that says what went wrong; `close` never cuts a reply that is still streaming.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import pytest

from rag.errors import LLMError, LLMResponseError, LLMUnavailable
from rag.llm.chat import ChatModel, Delta, StreamEvent, Usage
from rag.llm.ollama import OllamaChat
from rag.llm.openai_compatible import OpenAIChat
from rag.settings import Settings, load_settings
from tests import ollama_standin, openai_standin
from tests.fakes import ScriptedChat
from tests.ollama_standin import free_port

MESSAGES = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Which port?"}]


class Backend(Protocol):
    """One implementation, and a way to script the next reply its server (or fake) gives."""

    def script(self, thinking: str, content: str, done_reason: str = "stop", prompt_tokens: int | None = None,
               error_after: int | None = None, error: str = "") -> None: ...

    def chat(self) -> ChatModel: ...


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
