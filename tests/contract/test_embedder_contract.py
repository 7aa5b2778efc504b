"""The Embedder contract, run against every implementation: the real model on its default int8 backend, on
the fp32 torch backend (slow: it loads sentence-transformers), and HashingEmbedder, the unit tests' fake.

What every embedder promises (rag/index/embedder.py): texts become unit-length float32 rows of `dimension`, one per
text and in the texts' order whatever the batching; the same text always gets the same vector; texts that
share words are nearer than texts that share none; `embed_query` is one such row; `on_progress` hears of
every text once; `count_tokens` counts without special tokens; and `close` only ends threads: embedding
again afterwards works.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from rag.index.embedder import Embedder
from rag.index.local_model import SentenceTransformerEmbedder
from tests.fakes import HashingEmbedder

TEXTS = [
    "The Zorblax reactor runs at 42 kelvin.",
    "How cold does the Zorblax reactor run?",
    "The roof garden grows quinces and medlars.",
    "a",
    "",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    " ".join(["A very long passage that goes on and on about many things."] * 40),  # past 256 tokens
]


@pytest.fixture(scope="module", params=[
    pytest.param("int8", marks=pytest.mark.slow),
    pytest.param("torch", marks=pytest.mark.slow),
    "hashing",
])
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    made: Embedder
    if request.param == "int8":
        made = request.getfixturevalue("real_embedder")  # the session's, loaded once
    elif request.param == "torch":
        made = SentenceTransformerEmbedder(backend="torch")
    else:
        made = HashingEmbedder()
    yield made
    made.close()


def test_it_names_itself_and_its_limits(embedder: Embedder) -> None:
    assert embedder.name and embedder.dimension > 0 and embedder.max_tokens > 0


def test_rows_are_unit_length_float32_of_its_dimension(embedder: Embedder) -> None:
    vectors = embedder.embed_batch(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embed_keeps_the_texts_order_whatever_the_batches(embedder: Embedder) -> None:
    alone = np.stack([embedder.embed_batch([text])[0] for text in TEXTS])
    batched = embedder.embed(TEXTS, batch_size=3)
    assert batched.dtype == np.float32 and batched.shape == alone.shape
    # Row by row the same text (padding inside a batch may move the last digits: cosine, not equality).
    assert np.all(np.sum(batched * alone, axis=1) > 0.999)


def test_the_same_text_gets_the_same_vector(embedder: Embedder) -> None:
    first = embedder.embed_query(TEXTS[0])
    assert first.shape == (embedder.dimension,) and first.dtype == np.float32
    np.testing.assert_allclose(embedder.embed_query(TEXTS[0]), first, atol=1e-6)


def test_texts_that_share_words_are_nearer_than_texts_that_share_none(embedder: Embedder) -> None:
    fact, question, garden = embedder.embed(TEXTS[:3])
    assert float(fact @ question) > float(fact @ garden)


def test_embed_of_nothing_is_an_empty_matrix_and_progress_hears_of_every_text(embedder: Embedder) -> None:
    empty = embedder.embed([])
    assert empty.shape == (0, embedder.dimension) and empty.dtype == np.float32
    heard: list[int] = []
    embedder.embed(TEXTS, batch_size=2, on_progress=heard.append)
    assert sum(heard) == len(TEXTS) and all(count > 0 for count in heard)


def test_short_texts_embed_like_any_other(embedder: Embedder) -> None:
    words = ["reactor", "kelvin", "garden", "quinces", "a", "reactor"]
    short = embedder.embed_short(words)
    assert short.shape == (len(words), embedder.dimension)
    # "Where tiny differences do not matter": the int8 runner scales a shared call's activations together,
    # which moves a one-letter word's vector most (cosine 0.987 to its own).
    assert np.all(np.sum(short * embedder.embed(words), axis=1) > 0.98)


def test_count_tokens_counts_no_special_tokens_and_grows_with_the_text(embedder: Embedder) -> None:
    assert embedder.count_tokens("") == 0
    one = embedder.count_tokens("reactor")
    assert one >= 1
    assert embedder.count_tokens("reactor " * 300) >= 300 * one > embedder.max_tokens  # counts past the limit


def test_close_ends_threads_only_embedding_again_works(embedder: Embedder) -> None:
    before = embedder.embed_query(TEXTS[2])
    embedder.close()
    np.testing.assert_allclose(embedder.embed_query(TEXTS[2]), before, atol=1e-6)
