"""The embedder's pure parts: batching order, the hashing stand-in, names per backend, the int8 file cache."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.index.embedder import BACKENDS, DEFAULT_BACKEND, INT8_RECIPE, Embedder, model_name_for
from rag.index.onnx_runner import _check_mean_pooled, _fingerprint, int8_model_file
from rag.records import Vectors
from tests.fakes import HashingEmbedder


class RecordingEmbedder(Embedder):
    """Each vector says which text it came from (its first component is the text's number)."""

    def __init__(self) -> None:
        self.name, self.dimension, self.max_tokens = "recording", 2, 256
        self.batches: list[list[str]] = []

    def embed_batch(self, texts: Sequence[str]) -> Vectors:
        self.batches.append(list(texts))
        return np.array([[float(text.split()[0]), 0.0] for text in texts], dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def numbered(lengths: Sequence[int]) -> list[str]:
    return [" ".join([str(i)] + ["w"] * n) for i, n in enumerate(lengths)]


def test_embed_returns_rows_in_input_order_though_batches_go_longest_first() -> None:
    embedder = RecordingEmbedder()
    texts = numbered([3, 9, 1, 7, 5, 2, 8])
    progress: list[int] = []
    vectors = embedder.embed(texts, batch_size=3, on_progress=progress.append)
    assert vectors[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert [[int(t.split()[0]) for t in batch] for batch in embedder.batches] == [[1, 6, 3], [4, 0, 5], [2]]
    assert progress == [3, 3, 1]
    assert vectors.dtype == np.float32


def test_embed_of_nothing_is_an_empty_matrix_of_the_right_width() -> None:
    embedder = RecordingEmbedder()
    vectors = embedder.embed([])
    assert vectors.shape == (0, 2) and vectors.dtype == np.float32
    assert embedder.batches == []


def test_hashing_vectors_are_unit_length_deterministic_and_order_free() -> None:
    embedder = HashingEmbedder(dimension=32)
    texts = ["the reactor runs cold", "quinces grow on the roof", "", "cold reactor"]
    first = embedder.embed(texts)
    assert first.shape == (4, 32) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert np.array_equal(first, HashingEmbedder(dimension=32).embed(texts))
    assert np.array_equal(embedder.embed(texts[::-1])[::-1], first)
    assert np.array_equal(embedder.embed_query(texts[0]), first[0])


def test_hashing_shared_words_mean_similar_vectors() -> None:
    embedder = HashingEmbedder(dimension=256)
    reactor, cold_reactor, garden = embedder.embed(["the reactor runs cold", "cold reactor", "quinces grow"])
    assert float(reactor @ cold_reactor) > float(reactor @ garden)


def test_hashing_counts_words_and_records_what_it_embedded() -> None:
    embedder = HashingEmbedder()
    assert embedder.count_tokens("Revenue reached 7 million euros.") == 5
    embedder.embed(["a b", "c"], batch_size=1)
    assert sorted(embedder.embedded_texts) == ["a b", "c"]


def test_each_backend_names_its_own_collection() -> None:
    assert DEFAULT_BACKEND == "int8" and set(BACKENDS) == {"int8", "torch"}
    assert model_name_for(None, "torch") == "all-MiniLM-L6-v2"
    assert model_name_for(None, "int8") == "all-MiniLM-L6-v2-int8"
    assert model_name_for(None) == model_name_for(None, DEFAULT_BACKEND)
    assert model_name_for(Path("/models/bge-small"), "torch") == "bge-small"
    assert model_name_for(Path("/models/bge-small"), "int8") == "bge-small-int8"
    with pytest.raises(ConfigError, match="Unknown embedding backend 'gpu'"):
        model_name_for(None, "gpu")


def write_model(folder: Path, pooling: dict[str, bool] | None = None, normalize: bool = True) -> Path:
    """The configuration files of a sentence-transformers model folder (no weights)."""
    folder.mkdir(parents=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    modes = pooling or {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **modes}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(b"weights")
    return folder


def test_only_mean_pooled_models_go_to_the_int8_backend(tmp_path: Path) -> None:
    _check_mean_pooled(write_model(tmp_path / "mean"))
    _check_mean_pooled(write_model(tmp_path / "unnormalised", normalize=False))
    with pytest.raises(ConfigError, match="ARCHIVIST_EMBEDDING_BACKEND=torch"):
        _check_mean_pooled(write_model(tmp_path / "cls", {"pooling_mode_cls_token": True}))
    with pytest.raises(ConfigError, match="ARCHIVIST_EMBEDDING_BACKEND=torch"):
        _check_mean_pooled(
            write_model(tmp_path / "both", {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True})
        )


def test_the_int8_file_is_named_after_what_it_was_made_from(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    before = _fingerprint(model)
    assert _fingerprint(model) == before
    (model / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
    assert _fingerprint(model) != before


def test_a_cached_int8_file_is_used_without_building(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    cache = tmp_path / "cache"
    cache.mkdir()
    expected = cache / f"all-MiniLM-L6-v2-{INT8_RECIPE}-{_fingerprint(model)}.onnx"
    expected.write_bytes(b"an onnx file")
    assert int8_model_file(model, cache) == (expected, False)


def test_an_unwritable_cache_folder_is_a_configuration_error(tmp_path: Path) -> None:
    model = write_model(tmp_path / "model")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="ARCHIVIST_EMBEDDING_CACHE_DIR"):
        int8_model_file(model, blocker / "cache")
