"""In-memory fakes of the three outside systems, for tests (and the fast mode of bench/large_file.py).

Each implements the same interface as the real thing and passes the same contract tests (tests/contract/):
`InMemoryVectorStore` for Chroma, `ScriptedChat` for the chat servers, `HashingEmbedder` for the model.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag.errors import LLMError
from rag.index.embedder import Embedder
from rag.index.vectors import Metadata, VectorStore
from rag.llm.chat import ChatModel, Delta, Message, StreamEvent, ToolCall, ToolSpec, Usage
from rag.records import Effort, Vectors
from rag.tools.calculator import Calculation, Calculator


class InMemoryVectorStore(VectorStore):
    """Exact cosine search over a dict; same contract as Chroma, for fast tests."""

    def __init__(self) -> None:
        self._vectors: dict[str, Vectors] = {}
        self.metadatas: dict[str, Metadata] = {}
        self._lock = threading.Lock()

    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        with self._lock:
            for chunk_id, vector, metadata in zip(ids, vectors, metadatas, strict=True):
                self._vectors[chunk_id] = np.asarray(vector, dtype=np.float32)
                self.metadatas[chunk_id] = dict(metadata)

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            for chunk_id in ids:
                self._vectors.pop(chunk_id, None)
                self.metadatas.pop(chunk_id, None)

    def query(self, vector: Vectors, k: int, document_ids: Sequence[str] = ()) -> list[tuple[str, float]]:
        if k <= 0:
            return []
        wanted = set(document_ids)
        query = np.asarray(vector, dtype=np.float32)
        with self._lock:
            scored = [(chunk_id, _cosine(query, stored)) for chunk_id, stored in self._vectors.items()
                      if not wanted or self.metadatas[chunk_id].get("document_id") in wanted]
        scored.sort(key=lambda pair: pair[1], reverse=True)
        return scored[:k]

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._vectors)

    def vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        with self._lock:
            return {chunk_id: self._vectors[chunk_id].copy() for chunk_id in ids if chunk_id in self._vectors}

    def count(self) -> int:
        with self._lock:
            return len(self._vectors)


def _cosine(a: Vectors, b: Vectors) -> float:
    # Chroma's "cosine" space normalises both sides, so vectors of any length compare by direction alone.
    norms = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    return float(np.dot(a, b)) / norms if norms else 0.0


@dataclass
class ScriptedReply:
    thinking: str = ""
    content: str = ""
    done_reason: str = "stop"
    error: LLMError | None = None  # raised after the reply's pieces (ToolsUnsupported, MalformedToolCall…)
    prompt_tokens: int | None = None  # what the server reports having read
    tool_calls: list[ToolCall] = field(default_factory=list)  # yielded after the pieces, before the Usage


@dataclass
class ScriptedChat(ChatModel):
    """Replies are queued with `enqueue`, and every call is kept in `history`; `offered` keeps, call by call,
    the names of the tools offered ([] for a call without tools). `tools` says what supports_tools() says."""

    model: str = "scripted"
    where: str = "in memory"
    replies: deque[ScriptedReply] = field(default_factory=deque)
    history: list[tuple[list[Message], str]] = field(default_factory=list)
    offered: list[list[str]] = field(default_factory=list)
    tools: bool = True

    def enqueue(self, content: str, thinking: str = "", **kwargs: Any) -> None:
        self.replies.append(ScriptedReply(thinking=thinking, content=content, **kwargs))

    def stream(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> Iterator[StreamEvent]:
        self.history.append(([dict(m) for m in messages], effort))
        self.offered.append([tool.name for tool in tools])
        reply = self.replies.popleft() if self.replies else ScriptedReply(content="")
        for word in reply.thinking.split(" ") if reply.thinking else []:
            yield Delta(thinking=word + " ")
        for word in reply.content.split(" ") if reply.content else []:
            yield Delta(content=word + " ")
        if reply.error is not None:
            raise reply.error
        yield from reply.tool_calls
        yield Usage(reply.prompt_tokens, None, reply.done_reason)

    def supports_tools(self) -> bool:
        return self.tools


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder(Embedder):
    """A deterministic stand-in for the model: a bag of hashed words, so shared words mean similar vectors."""

    def __init__(self, dimension: int = 64, max_tokens: int = 256) -> None:
        self.name = f"hashing-{dimension}"
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.embedded_texts: list[str] = []  # every text embedded, for tests that count work

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        self.embedded_texts.extend(texts)
        result = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                result[row, int.from_bytes(digest, "little") % self.dimension] += 1.0
            norm = float(np.linalg.norm(result[row]))
            result[row] = result[row] / norm if norm else 1.0 / np.sqrt(self.dimension)
        return result

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))


@dataclass
class ScriptedCalculator(Calculator):
    """Returns queued results, and keeps every code it was given in `runs`; without a queued result it
    answers with an error saying so (so a test that forgot to script it fails visibly)."""

    results: deque[Calculation] = field(default_factory=deque)
    runs: list[str] = field(default_factory=list)

    def enqueue(self, output: str, error: str = "") -> None:
        self.results.append(Calculation(output=output, error=error))

    def run(self, code: str) -> Calculation:
        self.runs.append(code)
        return self.results.popleft() if self.results else Calculation("", error="no scripted result")
