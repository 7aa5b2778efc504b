"""The real embedding model on its default (int8) backend, checked against fp32 sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.factory import make_embedder
from rag.index.embedder import DEFAULT_BACKEND, packaged_model_dir
from rag.index.local_model import SentenceTransformerEmbedder
from rag.settings import load_settings
from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow

SENTENCES = [
    "The Zorblax reactor runs at 42 kelvin.",
    "It was commissioned in 1999 after a long delay.",
    "The roof garden grows quinces and medlars.",
    "Watering happens at dawn, every second day.",
    "Revenue reached 7 million euros in 2022, up from 5.9 million the year before.",
    "Costs were flat compared with the prior year.",
    "Net income attributable to shareholders was $1,234 million, or $2.31 per diluted share.",
    "Operating cash flow declined by 12% year over year due to working-capital outflows.",
    "Myeloid-derived suppressor cells expand in the bone marrow of patients with myelodysplasia.",
    "The randomised controlled trial enrolled 1,200 participants across 14 sites.",
    "Vitamin D supplementation did not reduce the incidence of fractures in older adults.",
    "Where did the board meet?",
    "How cold is the reactor?",
    "What was the company's capital expenditure in fiscal 2019?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Le conseil d'administration s'est réuni à Lisbonne en mars.",
    "Table 3: Segment results (in millions) | 2021 | 2020 | Change",
    "See Note 7 — Goodwill and Intangible Assets — for further details.",
    "a",
    "",
    "   leading and trailing spaces   ",
    "ALL CAPS HEADLINE ABOUT QUARTERLY EARNINGS",
    "e-mail: investor.relations@example.com, tel. +1 (555) 010-2030",
    "The gene BRCA1 encodes a protein involved in DNA double-strand break repair.",
    "Python's GIL serialises bytecode execution across threads.",
    " ".join(["A very long passage that goes on and on about many things."] * 40),  # past 256 tokens
]


@pytest.fixture(scope="module")
def default_embedder() -> SentenceTransformerEmbedder:
    """Whatever the product builds from the default settings."""
    embedder = make_embedder(load_settings())
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


@pytest.fixture(scope="module")
def reference() -> Any:
    """fp32 sentence-transformers with its default settings: what the default backend must agree with."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(packaged_model_dir()), device="cpu", local_files_only=True)


def cosines(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    return np.asarray((ours * theirs).sum(axis=1))


def scifact_abstracts(shared_data: Path, count: int) -> list[str]:
    corpus = shared_data / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is absent")
    texts = []
    with corpus.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(record["title"] + "\n\n" + record["text"])
            if len(texts) == count:
                break
    return texts


def test_the_default_is_the_int8_backend_with_its_own_collection(default_embedder: SentenceTransformerEmbedder) -> None:
    assert DEFAULT_BACKEND == "int8"
    assert default_embedder.backend == "int8"
    assert default_embedder.name == "all-MiniLM-L6-v2-int8"
    assert default_embedder.model_file is not None and default_embedder.model_file.is_file()
    assert (default_embedder.dimension, default_embedder.max_tokens) == (384, 256)


def test_vectors_are_unit_length_float32_of_dimension_384(default_embedder: SentenceTransformerEmbedder) -> None:
    vectors = default_embedder.embed(SENTENCES, batch_size=7)
    assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = default_embedder.embed_query("How cold is the reactor?")
    assert query.shape == (384,) and query.dtype == np.float32
    assert np.allclose(query, vectors[SENTENCES.index("How cold is the reactor?")], atol=1e-5)


def test_vectors_agree_with_fp32_sentence_transformers_on_written_sentences(
    default_embedder: SentenceTransformerEmbedder, reference: Any
) -> None:
    similarity = cosines(default_embedder.embed(SENTENCES), reference.encode(SENTENCES))
    assert similarity.mean() > 0.99, similarity
    assert similarity.min() > 0.97, similarity


def test_vectors_agree_with_fp32_sentence_transformers_on_scifact(
    default_embedder: SentenceTransformerEmbedder, reference: Any, shared_data: Path
) -> None:
    abstracts = scifact_abstracts(shared_data, 50)
    similarity = cosines(default_embedder.embed(abstracts), reference.encode(abstracts))
    assert similarity.mean() > 0.99, similarity
    assert similarity.min() > 0.98, similarity


def test_retrieval_order_survives_quantisation(default_embedder: SentenceTransformerEmbedder, reference: Any) -> None:
    passages = SENTENCES[:11]
    for question, answer in [("How cold is the reactor?", 0), ("What grows on the roof?", 2),
                             ("How much revenue was there in 2022?", 4)]:
        ours = default_embedder.embed(passages) @ default_embedder.embed_query(question)
        theirs = reference.encode(passages) @ reference.encode(question)
        assert int(np.argmax(ours)) == int(np.argmax(theirs)) == answer


def test_count_tokens_agrees_with_the_model_tokenizer(
    default_embedder: SentenceTransformerEmbedder, reference: Any
) -> None:
    for text in SENTENCES:
        expected = len(reference.tokenizer(text, add_special_tokens=False)["input_ids"])
        assert default_embedder.count_tokens(text) == expected, text


def test_the_model_sees_the_tokens_sentence_transformers_would_give_it(
    default_embedder: SentenceTransformerEmbedder, reference: Any
) -> None:
    runner = default_embedder._runner
    for text in SENTENCES:
        ours = runner._tokenizer.encode(text.strip()).ids
        theirs = reference.tokenize([text])["input_ids"][0].tolist()
        assert ours == theirs, text


def test_batches_from_two_threads_give_the_same_vectors(default_embedder: SentenceTransformerEmbedder) -> None:
    alone = default_embedder.embed_batch(SENTENCES)
    results: dict[int, np.ndarray] = {}

    def work(slot: int) -> None:
        results[slot] = default_embedder.embed_batch(SENTENCES)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for vectors in results.values():
        assert np.allclose(vectors, alone, atol=1e-6)


def test_a_texts_vector_does_not_depend_on_its_batch_but_short_texts_may_share_calls(
    default_embedder: SentenceTransformerEmbedder,
) -> None:
    words = ["quince", "medlar", "frost", "kelvin", "reactor", "october", "garden", "port"]
    alone = np.stack([default_embedder.embed_batch([word])[0] for word in words])
    assert np.array_equal(default_embedder.embed_batch(words), alone)  # int8 activations: one scale a call
    shared = default_embedder.embed_short(words)
    assert np.all(np.sum(shared * alone, axis=1) > 0.99)


def test_the_torch_backend_still_matches_fp32_exactly(reference: Any) -> None:
    embedder = SentenceTransformerEmbedder(backend="torch")
    assert embedder.name == "all-MiniLM-L6-v2"
    similarity = cosines(embedder.embed(SENTENCES[:10]), reference.encode(SENTENCES[:10]))
    assert similarity.min() > 0.9999


PROBE = """
import json, sys
from pathlib import Path
from rag.factory import make_embedder
from rag.settings import load_settings
embedder = make_embedder(load_settings())
vector = embedder.embed_query("Where did the board meet?")
print(json.dumps({"name": embedder.name, "built": embedder.built, "dimension": int(vector.shape[0]),
                  "norm": float((vector @ vector) ** 0.5), "torch_loaded": "torch" in sys.modules}))
"""


def test_the_int8_model_is_made_offline_from_the_packaged_files(tmp_path: Path) -> None:
    """A fresh cache folder, the hub switched off and every proxy pointing nowhere: the int8 copy is still
    made (from the files pip installed) and loads; a second process reuses it. It is made in a child process:
    torch's exporter held this process's GIL for tens of seconds (a page served by it froze) and left ~1 GB."""
    env = subprocess_env(
        HF_HUB_OFFLINE="1",
        ARCHIVIST_EMBEDDING_CACHE_DIR=str(tmp_path / "cache"),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        ALL_PROXY="http://127.0.0.1:9",
    )
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [run["built"] for run in runs] == [True, False]
    for run in runs:
        assert run["name"] == "all-MiniLM-L6-v2-int8" and run["dimension"] == 384
        assert abs(run["norm"] - 1.0) < 1e-5
        assert not run["torch_loaded"], "the int8 model was built (or torch loaded) in the process that uses it"
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1
    assert not list((tmp_path / "cache").glob(".building-*"))  # the scratch folder is gone
