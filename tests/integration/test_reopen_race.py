"""A reader's reopen of the embedded Chroma (Index.refresh after another process wrote) while other page
sessions query the same store: no query may meet a closed client."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from rag.index.vectors import ChromaVectorStore


def test_queries_during_reopen_never_see_a_closed_client(tmp_path: Path) -> None:
    store = ChromaVectorStore(tmp_path / "chroma", "test-model")
    vectors = np.eye(8, dtype=np.float32)
    store.upsert([f"c{n}" for n in range(8)], vectors, [{"document_id": f"d{n}"} for n in range(8)])
    errors: list[BaseException] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            try:
                assert store.query(vectors[3], 2)[0][0] == "c3"
                assert store.count() == 8
            except BaseException as error:  # any failure is the finding
                errors.append(error)
                return

    askers = [threading.Thread(target=ask) for _ in range(2)]
    for thread in askers:
        thread.start()
    try:
        for _ in range(60):
            store.reopen()
            if errors:
                break
    finally:
        done.set()
        for thread in askers:
            thread.join()
        store.close()
    assert not errors, f"a query failed during reopen: {errors[0]!r}"
