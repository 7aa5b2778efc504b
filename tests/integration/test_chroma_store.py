"""The Chroma vector store against its contract, on a real embedded Chroma in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.vectors import ChromaVectorStore


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_upsert_query_filter_delete(tmp_path: Path) -> None:
    store = ChromaVectorStore(tmp_path / "chroma", "test-model")
    try:
        # Around the query q = (1, 0, 0): c is nearest, then d, then a; b is orthogonal.
        q = unit(1, 0, 0)
        vectors = np.stack([unit(1, 1, 0), unit(0, 0, 1), unit(1, 0.1, 0), unit(1, 0.5, 0)])
        store.upsert(["a", "b", "c", "d"], vectors,
                     [{"document_id": document} for document in ("d1", "d1", "d2", "d3")])
        assert store.count() == 4 and store.ids() == {"a", "b", "c", "d"}
        assert [chunk for chunk, _ in store.query(q, 4)] == ["c", "d", "a", "b"]
        nearest = store.query(vectors[2], 2)
        assert nearest[0][0] == "c" and abs(nearest[0][1] - 1.0) < 1e-5
        # Within documents: the nearest chunk of d1 and d3 (d), though c is nearer overall; within d1 alone,
        # a before b, however far both are from the top overall.
        assert [chunk for chunk, _ in store.query(q, 1, document_ids=["d1", "d3"])] == ["d"]
        assert [chunk for chunk, _ in store.query(q, 4, document_ids=["d1"])] == ["a", "b"]
        store.delete(["a", "c"])
        assert store.ids() == {"b", "d"}
    finally:
        store.close()


def test_stored_vectors_read_back_by_id(tmp_path: Path) -> None:
    """`vectors(ids)`: the catalog keeps no copy of a stored vector, so both stores must give them back."""
    from tests.fakes import InMemoryVectorStore

    chroma = ChromaVectorStore(tmp_path / "chroma", "test-model")
    try:
        rng = np.random.default_rng(7)
        vectors = rng.standard_normal((1500, 8)).astype(np.float32)  # more than one of Chroma's batches
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"c{n}" for n in range(1500)]
        for store in (chroma, InMemoryVectorStore()):
            store.upsert(ids, vectors, [{"document_id": "d"}] * len(ids))
            wanted = [*ids[::-7], "absent"]
            found = store.vectors(wanted)
            assert set(found) == set(wanted) - {"absent"}
            for chunk_id, vector in found.items():
                assert vector.dtype == np.float32
                np.testing.assert_allclose(vector, vectors[int(chunk_id[1:])], rtol=1e-6)
    finally:
        chroma.close()
