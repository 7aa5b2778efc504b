"""The index on a real Chroma server (ARCHIVIST_CHROMA_URL): `chroma run` on a loopback port, and the CLI
ingesting, searching and reconciling against it as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag import offline  # noqa: F401  (must precede chromadb)
from rag.errors import ConfigError, VectorServerUnavailable
from rag.index.embedder import model_name_for
from rag.index.vectors import ChromaServerVectorStore
from rag.settings import parse_chroma_url
from tests.chroma_server import running_chroma_server
from tests.conftest import subprocess_env
from tests.ollama_standin import free_port
from tests.pdf_factory import text_pdf

pytestmark = pytest.mark.slow



def archivist(*args: str, data_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ui.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, env=env,
    )


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server on a free loopback port (tests/chroma_server.py)."""
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@contextmanager
def server_collection(url: str) -> Iterator[Any]:
    """The index's collection on the server, read directly through Chroma's own client (closed afterwards)."""
    store = ChromaServerVectorStore(url, model_name_for(None))
    try:
        [collection] = [found for found in store._client.list_collections() if found.name.startswith("chunks-all")]
        assert collection.configuration["hnsw"]["space"] == "cosine"
        yield collection
    finally:
        store.close()


def test_ingest_search_and_reconcile_on_the_server(chroma_url: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("# Physics notes\n\nThe Zorblax reactor runs at 42 kelvin. It was built in 1999.\n")
    (docs / "fruit.txt").write_text("Quinces are hard, fragrant fruit that turn pink when cooked slowly.\n")
    (docs / "plain.txt").write_text("Bananas are rich in potassium. Apples keep the doctor away.\n")
    (docs / "report.pdf").write_bytes(text_pdf(
        [["Annual report 2022.", "Introduction."], ["Revenue grew to 7 million euros in 2022."], ["Outlook."]]
    ))
    data_dir = tmp_path / "data"
    env = subprocess_env(ARCHIVIST_CHROMA_URL=chroma_url)

    result = archivist("ingest", str(docs), "--json", data_dir=data_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["indexed"] == 4
    with server_collection(chroma_url) as collection:
        total = collection.count()
        assert total >= 4

        result = archivist("search", "How much revenue in 2022?", "--k", "1", "--json", data_dir=data_dir, env=env)
        assert result.returncode == 0, result.stderr
        [best] = json.loads(result.stdout)
        assert Path(best["path"]).name == "report.pdf" and best["page_start"] <= 2 <= best["page_end"]
        assert "7 million" in best["text"]

        result = archivist("search", "quinces", "--k", "1", "--json", data_dir=data_dir, env=env)
        [quince] = json.loads(result.stdout)
        assert Path(quince["path"]).name == "fruit.txt"
        fruit_ids = collection.get(ids=[quince["chunk_id"]], include=["metadatas"])
        assert fruit_ids["ids"] == [quince["chunk_id"]]
        fruit_document = fruit_ids["metadatas"][0]["document_id"]
        fruit_chunks = collection.get(where={"document_id": fruit_document}, include=[])["ids"]

        (docs / "fruit.txt").unlink()
        result = archivist("ingest", str(docs), "--json", data_dir=data_dir, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["removed"] == 1
        assert collection.get(where={"document_id": fruit_document}, include=[])["ids"] == []
        assert collection.count() == total - len(fruit_chunks)

        result = archivist("search", "quinces", "--k", "3", "--json", data_dir=data_dir, env=env)
        assert all(Path(hit["path"]).name != "fruit.txt" for hit in json.loads(result.stdout))
        # The vectors live on the server: the data folder holds the catalog and no Chroma folder.
        assert (data_dir / "catalog.sqlite3").exists()
        assert not (data_dir / "chroma").exists()


def test_a_server_that_does_not_answer_is_named_with_the_way_out(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(VectorServerUnavailable) as caught:
        ChromaServerVectorStore(url, "test-model")
    message = str(caught.value)
    assert url in message and "chroma run --path DIR --port" in message and "unset ARCHIVIST_CHROMA_URL" in message

    result = archivist("search", "reactor", data_dir=tmp_path, env=subprocess_env(ARCHIVIST_CHROMA_URL=url))
    assert result.returncode != 0
    assert url in result.stderr and "chroma run" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "chroma").exists()


@pytest.mark.parametrize("url", ["chroma:8000", "ftp://chroma:8000", "http://chroma:port", "http://chroma:8000/x"])
def test_a_bad_url_is_a_config_error(url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ARCHIVIST_CHROMA_URL"):
        parse_chroma_url(url)
    result = archivist("search", "reactor", data_dir=tmp_path, env=subprocess_env(ARCHIVIST_CHROMA_URL=url))
    assert result.returncode != 0
    assert "chroma_url" in result.stderr and "Traceback" not in result.stderr


def test_urls_without_a_port_take_chromas_defaults() -> None:
    assert parse_chroma_url("http://chroma") == ("chroma", 8000, False)
    assert parse_chroma_url("https://vectors.example.org/") == ("vectors.example.org", 443, True)
    assert parse_chroma_url("http://127.0.0.1:8123") == ("127.0.0.1", 8123, False)


def test_a_reader_sees_another_writers_vectors_without_reopening(chroma_url: str) -> None:
    import numpy as np

    writer = ChromaServerVectorStore(chroma_url, "reader-test")
    reader = ChromaServerVectorStore(chroma_url, "reader-test")
    try:
        assert reader.count() == 0
        writer.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32), [{"document_id": "d1"}, {"document_id": "d2"}])
        assert reader.count() == 2
        assert reader.query(np.eye(4, dtype=np.float32)[1], 1, ["d2"])[0][0] == "b"
        writer.delete(["a"])
        assert reader.ids() == {"b"}
    finally:
        writer.close()
        reader.close()
