"""Language models that stream a reply as reasoning and answer: the one interface (`ChatModel`) and its
records. Behind it: Ollama (rag/llm/ollama.py) and any OpenAI-compatible server
(rag/llm/openai_compatible.py); the scripted fake for tests is tests/fakes.py."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rag.records import Effort

logger = logging.getLogger(__name__)

Message = dict[str, str]

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

StreamEvent = Delta | Usage

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
    def stream(self, messages: Sequence[Message], effort: Effort) -> Iterator[StreamEvent]: ...

    def check(self) -> None:  # noqa: B027 (optional: a fake has nothing to check)
        """Raise the LLMError a request would raise (server down, model missing), cheaply and early."""

    def close(self) -> None:  # noqa: B027 (optional: a fake holds no connections)
        """Release the client's connections (after the replies still streaming have ended)."""

    def complete(self, messages: Sequence[Message], effort: Effort) -> str:
        """The whole answer text of one reply (its reasoning discarded), for short helper requests."""
        return "".join(event.content for event in self.stream(messages, effort) if isinstance(event, Delta)).strip()

