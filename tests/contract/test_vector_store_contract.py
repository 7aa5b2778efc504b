"""The VectorStore contract, run against every implementation: Chroma embedded in a temporary folder, a real
Chroma server (`chroma run` on a loopback port), and the in-memory twin the unit tests use.

What every store promises (rag/index/vectors.py): one vector per chunk id; `query` gives the k nearest ids with
their cosine similarity, best first, narrowed to the chunks of `document_ids` when given (however far those
are from the top overall); `upsert` of a stored id replaces its vector and metadata; `delete` forgets ids
(absent ones are no error); `vectors` gives stored vectors back as float32 (absent ids absent); `count` and
`ids` say what is stored; `reopen` and `close` lose nothing that was written.
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rag import offline  # noqa: F401  (must precede chromadb)
from rag.index.vectors import ChromaServerVectorStore, ChromaVectorStore, VectorStore
from tests.chroma_server import running_chroma_server
from tests.fakes import InMemoryVectorStore


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chroma run` for the server store (tests/chroma_server.py)."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.slow), "in-memory"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], VectorStore]]:
    """Opens the store under test; a second call opens the same collection again (a restart)."""
    opened: list[VectorStore] = []
    collection = f"contract-{uuid.uuid4().hex[:8]}"  # the server's collections outlive a test
    memory = InMemoryVectorStore()

    def factory() -> VectorStore:
        store: VectorStore
        if request.param == "embedded":
            store = ChromaVectorStore(tmp_path / "chroma", collection)
        elif request.param == "server":
            store = ChromaServerVectorStore(request.getfixturevalue("chroma_url"), collection)
        else:
            store = memory  # nothing outlives the process: "reopening" is the same object
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], VectorStore]) -> VectorStore:
    return open_store()


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def ids_of(found: list[tuple[str, float]]) -> list[str]:
    return [chunk_id for chunk_id, _ in found]


# Around the query Q = (1, 0, 0): c is nearest, then d, then a; b is orthogonal.
Q = unit(1, 0, 0)
VECTORS = {"a": unit(1, 1, 0), "b": unit(0, 0, 1), "c": unit(1, 0.1, 0), "d": unit(1, 0.5, 0)}
DOCUMENTS = {"a": "d1", "b": "d1", "c": "d2", "d": "d3"}


def fill(store: VectorStore) -> None:
    ids = list(VECTORS)
    store.upsert(ids, np.stack([VECTORS[i] for i in ids]), [{"document_id": DOCUMENTS[i]} for i in ids])


def test_an_empty_store_finds_nothing(store: VectorStore) -> None:
    assert store.count() == 0 and store.ids() == set()
    assert store.query(Q, 5) == []
    assert store.vectors(["a"]) == {}


def test_query_gives_the_nearest_best_first_with_their_cosine_similarity(store: VectorStore) -> None:
    fill(store)
    found = store.query(Q, 3)
    assert ids_of(found) == ["c", "d", "a"]
    for chunk_id, similarity in found:
        assert similarity == pytest.approx(float(np.dot(Q, VECTORS[chunk_id])), abs=1e-5)
    assert ids_of(store.query(Q, 10)) == ["c", "d", "a", "b"]  # k beyond the count: everything
    assert store.query(Q, 0) == []


def test_similarity_is_cosine_whatever_the_vectors_lengths(store: VectorStore) -> None:
    # Only the direction counts: a long vector is not "nearer" than a short one pointing the same way.
    store.upsert(["long", "short"], np.stack([10 * unit(1, 1, 0), 0.5 * unit(1, 0, 0)]),
                 [{"document_id": "d"}] * 2)
    found = dict(store.query(3 * Q, 2))
    assert ids_of(store.query(3 * Q, 2)) == ["short", "long"]
    assert found["short"] == pytest.approx(1.0, abs=1e-5)
    assert found["long"] == pytest.approx(float(np.dot(Q, unit(1, 1, 0))), abs=1e-5)


def test_a_query_within_documents_finds_their_chunks_however_far_from_the_top(store: VectorStore) -> None:
    fill(store)
    assert ids_of(store.query(Q, 1, document_ids=["d1", "d3"])) == ["d"]
    assert ids_of(store.query(Q, 4, document_ids=["d1"])) == ["a", "b"]
    assert store.query(Q, 4, document_ids=["nowhere"]) == []


def test_upserting_a_stored_id_replaces_its_vector_and_metadata(store: VectorStore) -> None:
    fill(store)
    store.upsert(["b"], np.stack([Q]), [{"document_id": "d9"}])
    assert store.count() == 4
    assert store.query(Q, 1)[0] == ("b", pytest.approx(1.0, abs=1e-5))
    assert ids_of(store.query(Q, 4, document_ids=["d1"])) == ["a"]
    assert ids_of(store.query(Q, 4, document_ids=["d9"])) == ["b"]


def test_delete_forgets_ids_and_ignores_absent_ones(store: VectorStore) -> None:
    fill(store)
    store.delete(["a", "c", "never-stored"])
    assert store.ids() == {"b", "d"} and store.count() == 2
    assert ids_of(store.query(Q, 4)) == ["d", "b"]
    assert set(store.vectors(["a", "b"])) == {"b"}


def test_stored_vectors_read_back_by_id_as_float32(store: VectorStore) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((1500, 8)).astype(np.float32)  # more than one of Chroma's batches
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"c{n}" for n in range(1500)]
    store.upsert(ids, vectors, [{"document_id": "d"}] * len(ids))
    assert store.count() == 1500 and store.ids() == set(ids)
    wanted = [*ids[::-7], "absent"]
    found = store.vectors(wanted)
    assert set(found) == set(wanted) - {"absent"}
    for chunk_id, vector in found.items():
        assert vector.dtype == np.float32
        np.testing.assert_allclose(vector, vectors[int(chunk_id[1:])], rtol=1e-6)


def test_what_was_written_survives_reopen_and_a_restart(open_store: Callable[[], VectorStore]) -> None:
    store = open_store()
    fill(store)
    store.reopen()
    assert ids_of(store.query(Q, 4)) == ["c", "d", "a", "b"]
    store.close()
    again = open_store()
    assert again.ids() == set(VECTORS) and ids_of(again.query(Q, 1)) == ["c"]


def test_close_lets_go_of_files_and_connections(
    open_store: Callable[[], VectorStore], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    import psutil

    store = open_store()
    fill(store)
    assert ids_of(store.query(Q, 1)) == ["c"]
    store.close()
    gc.collect()
    me = psutil.Process()
    assert [file.path for file in me.open_files() if file.path.startswith(str(tmp_path))] == []
    if request.node.callspec.params["open_store"] == "server":
        port = int(request.getfixturevalue("chroma_url").rsplit(":", 1)[1])
        assert [c for c in me.net_connections("tcp") if c.raddr and c.raddr.port == port] == []
