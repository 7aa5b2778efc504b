"""Where chunk vectors live: a small interface and Chroma behind it, embedded or as a server (the in-memory
twin for tests is tests/fakes.py)."""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rag import offline  # noqa: F401  (must precede chromadb)
from rag.errors import VectorServerUnavailable
from rag.records import Vectors
from rag.settings import parse_chroma_url

logger = logging.getLogger(__name__)

Metadata = dict[str, str | int | float | bool]


class VectorStore(ABC):
    """One vector per chunk id, searched by cosine similarity."""

    @abstractmethod
    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None: ...

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def query(self, vector: Vectors, k: int, document_ids: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The k nearest ids with their cosine similarity, best first; only chunks of `document_ids`, if
        given (a search narrowed to a few documents must not depend on them being near the top overall)."""

    @abstractmethod
    def ids(self) -> set[str]: ...

    @abstractmethod
    def vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        """The stored vectors of these ids (ids not stored are absent): the catalog keeps no second copy."""

    @abstractmethod
    def count(self) -> int: ...

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release files or connections, where the backend holds any."""

    def reopen(self) -> None:  # noqa: B027 (optional hook)
        """See what other processes wrote since this store was opened, where the backend needs telling."""


class ReadWriteGate:
    """Many users at once, or one reopen alone: a query must never meet a client that reopen() has closed.
    A waiting reopen goes first, so a steady stream of queries cannot starve it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._users = 0
        self._reopening = False
        self._waiting = 0

    @contextmanager
    def using(self) -> Iterator[None]:
        with self._condition:
            while self._reopening or self._waiting:
                self._condition.wait()
            self._users += 1
        try:
            yield
        finally:
            with self._condition:
                self._users -= 1
                self._condition.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        with self._condition:
            self._waiting += 1
            while self._reopening or self._users:
                self._condition.wait()
            self._waiting -= 1
            self._reopening = True
        try:
            yield
        finally:
            with self._condition:
                self._reopening = False
                self._condition.notify_all()


def collection_name(model_name: str) -> str:
    """One collection per embedding model: vectors of different models never mix."""
    safe = re.sub(r"[^a-zA-Z0-9._-]+", "-", model_name).strip("-._") or "model"
    return f"chunks-{safe}"[:200]


class ChromaVectorStore(VectorStore):
    """Chroma's embedded PersistentClient in the data folder, telemetry off; we supply every vector."""

    _BATCH = 1000  # stays well under Chroma's max batch size

    def __init__(self, path: Path, model_name: str) -> None:
        self._path = path
        self._model_name = model_name
        self._gate = ReadWriteGate()  # every use of the client, against reopen() and close()
        self._open()

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self._path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(
            path=str(self._path), settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        )

    def _open(self) -> None:
        self._client: Any = self._connect()
        # embedding_function=None: Chroma's default function would try to download an ONNX model.
        self._collection: Any = self._client.get_or_create_collection(
            collection_name(self._model_name),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )

    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        with self._gate.using():
            self._upsert(ids, vectors, metadatas)

    def _upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        for start in range(0, len(ids), self._BATCH):
            end = start + self._BATCH
            self._collection.upsert(
                ids=list(ids[start:end]),
                embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                metadatas=list(metadatas[start:end]),
            )

    def delete(self, ids: Sequence[str]) -> None:
        with self._gate.using():
            for start in range(0, len(ids), self._BATCH):
                self._collection.delete(ids=list(ids[start : start + self._BATCH]))

    def query(self, vector: Vectors, k: int, document_ids: Sequence[str] = ()) -> list[tuple[str, float]]:
        # No count() first: over 100,000 vectors Chroma takes ~17 ms to count and ~2 ms to search, and an
        # empty collection simply answers with no ids.
        if k <= 0:
            return []
        where: dict[str, Any] | None = None
        if document_ids:
            where = {"document_id": {"$in": list(document_ids)}}
        with self._gate.using():
            result = self._collection.query(
                query_embeddings=np.asarray([vector], dtype=np.float32), n_results=k, include=["distances"],
                where=where,
            )
        return [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in zip(
            result["ids"][0], result["distances"][0], strict=True
        )]

    def ids(self) -> set[str]:
        found: set[str] = set()
        offset = 0
        with self._gate.using():
            while True:
                page = self._collection.get(include=[], limit=10_000, offset=offset)["ids"]
                found.update(page)
                if len(page) < 10_000:
                    return found
                offset += len(page)

    def vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        found: dict[str, Vectors] = {}
        with self._gate.using():
            for start in range(0, len(ids), self._BATCH):
                result = self._collection.get(ids=list(ids[start : start + self._BATCH]), include=["embeddings"])
                for chunk_id, vector in zip(result["ids"], result["embeddings"], strict=True):
                    found[chunk_id] = np.asarray(vector, dtype=np.float32)
        return found

    def count(self) -> int:
        with self._gate.using():
            return int(self._collection.count())

    def close(self) -> None:
        with self._gate.alone():  # after the queries in flight
            self._close()

    def _close(self) -> None:
        # Chroma shares one system per path within a process; closing releases it (and its files).
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def reopen(self) -> None:
        """Load the collection afresh. An embedded client keeps its nearest-neighbour index in memory and
        does not see vectors another process added after it loaded; a reader reopens when the catalog says
        another process has written. Waits for the queries in flight, and holds new ones until it is done."""
        with self._gate.alone():
            self._close()
            self._open()


class ChromaServerVectorStore(ChromaVectorStore):
    """The same collection on a Chroma server (ARCHIVIST_CHROMA_URL) through its HTTP client, telemetry off;
    nothing is written to the data folder."""

    def __init__(self, url: str, model_name: str) -> None:
        self._url = url
        self._host, self._port, self._ssl = parse_chroma_url(url)
        self._model_name = model_name
        self._gate = ReadWriteGate()
        self._open()

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        try:
            return chromadb.HttpClient(
                host=self._host, port=self._port, ssl=self._ssl,
                settings=ChromaSettings(anonymized_telemetry=False),
            )
        except Exception as error:  # chromadb raises a bare ValueError (or httpx's errors) when unreachable
            raise VectorServerUnavailable(
                f"No Chroma server answers at {self._url} ({error}). Start one with "
                f"`chroma run --path DIR --port {self._port}`, or unset ARCHIVIST_CHROMA_URL to keep the "
                "vectors in the data folder."
            ) from None

    def close(self) -> None:
        """Release this store's connections to the server (the server's data outlives us)."""
        with self._gate.alone():
            # The HTTP components of chromadb's client and of the admin client it makes for itself.
            clients = (self._client, getattr(self._client, "_admin_client", None))
            servers = [getattr(client, "_server", None) for client in clients]
            self._client.close()
            # chromadb shares its client systems within a process and stops one when its last client closes,
            # but leaves the system's HTTP session, with its pooled sockets, to the garbage collector: close
            # the sessions of the systems that stopped.
            for server in servers:
                session = getattr(server, "_session", None)
                if session is not None and not getattr(server, "_running", True):
                    session.close()

    def reopen(self) -> None:
        """Nothing to do: the server answers every query from its current state, whoever wrote it."""
