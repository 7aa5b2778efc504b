"""Language models that stream a reply as reasoning and answer: the one interface (`ChatModel`) and its
records. Behind it: Ollama (rag/llm/ollama.py) and any OpenAI-compatible server
(rag/llm/openai_compatible.py); the scripted fake for tests is tests/fakes.py."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rag.records import Effort

logger = logging.getLogger(__name__)

# A chat message in Archivist's backend-neutral form; each backend writes it in its own wire format:
#   {"role": "system" | "user", "content": str}
#   {"role": "assistant", "content": str, "thinking": str (optional), "tool_calls": list[ToolCall] (optional)}
#   {"role": "tool", "name": <ToolSpec.name>, "call_id": <ToolCall.id>, "content": str}   (a tool's result)
# The assistant's `thinking` is sent back only between the tool calls of one turn (harmony keeps reasoning
# across tool calls and drops it after a final answer); the research loop decides what it keeps.
Message = dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model. `name` is Archivist's own (letters, digits, `_`: valid everywhere);
    `trained_name` is the name gpt-oss was trained with (`browser.search`, `browser.open`, `browser.find`), which
    a backend that can pass it through to the model's built-in tools (Ollama) uses instead. Tool calls come back
    under `name`.

    What Ollama's gpt-oss template does with a trained name: it shows the model its built-in tool's own text and
    signature (`search({query, topn?, source?})`, `open({id?, cursor?, loc?, num_lines?, view_source?,
    source?})`, `find({pattern, cursor?})`), not this description or these parameters, so the arguments that
    come back are the trained ones. Do not give a code tool the trained name `python`: gpt-oss writes raw code
    (not JSON) to its built-in python, which Ollama's parser rejects (HTTP 500 `error parsing tool call`), and the
    built-in's text promises a stateful notebook with files. Other tools are shown as TypeScript signatures with
    each top-level parameter's type and description only (no nesting, enums or optional marks)."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object
    trained_name: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool. Arrives in the stream before the Usage that ends the reply.

    `name` is mapped back to the ToolSpec's `name` when the model used the trained name. `arguments` is the
    parsed object; when the server sent text that is not a JSON object, `arguments` is empty and
    `arguments_error` says what was wrong (the loop answers it as a tool error)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""  # OpenAI-compatible servers' tool_call_id; Ollama has none (results go back by name)
    arguments_error: str = ""

@dataclass(frozen=True)
class Delta:
    """A piece of the reply as it streams: reasoning (`thinking`) and answer (`content`) kept apart."""

    thinking: str = ""
    content: str = ""

@dataclass(frozen=True)
class Usage:
    """The last event of every stream."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str | None = None  # stop | length | INCOMPLETE (the stream ended without its end marker)

INCOMPLETE = "incomplete"  # Usage.done_reason of a reply whose stream ended before the server said it was done

StreamEvent = Delta | ToolCall | Usage

class IdleCloser:
    """Closes a client once no reply streams through it any more: a chat model replaced on the Settings page
    may still be answering another page session, which must not have its connection cut."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close
        self._lock = threading.Lock()
        self._active = 0
        self._closing = False
        self.closed = False

    @contextmanager
    def streaming(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                last = self._closing and self._active == 0 and not self.closed
                self.closed = self.closed or last
            if last:
                self._close()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            now = self._active == 0 and not self.closed
            self.closed = self.closed or now
        if now:
            self._close()

class ChatModel(ABC):
    """Streams a chat reply. Implementations turn every failure into an LLMError with the exact fix."""

    model: str
    where: str  # for messages: the URL or description of the server

    @abstractmethod
    def stream(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> Iterator[StreamEvent]:
        """Stream one reply. With `tools`, the reply may end in ToolCall events instead of (or after) an
        answer. A server or model that refuses tools raises ToolsUnsupported; a tool call the server could not
        parse (Ollama's HTTP 500 `error parsing tool call`) raises MalformedToolCall."""

    def supports_tools(self) -> bool:
        """Whether the model is known to take tools. True unless the server says otherwise (Ollama's
        /api/show capabilities); a server that then refuses `tools` raises ToolsUnsupported on the request."""
        return True

    def check(self) -> None:  # noqa: B027 (optional: a fake has nothing to check)
        """Raise the LLMError a request would raise (server down, model missing), cheaply and early."""

    def close(self) -> None:  # noqa: B027 (optional: a fake holds no connections)
        """Release the client's connections (after the replies still streaming have ended)."""

    def complete(self, messages: Sequence[Message], effort: Effort) -> str:
        """The whole answer text of one reply (its reasoning discarded), for short helper requests."""
        return "".join(event.content for event in self.stream(messages, effort) if isinstance(event, Delta)).strip()

