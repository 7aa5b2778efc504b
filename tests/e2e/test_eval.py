"""`archivist eval beir` and `archivist eval financebench` end to end: real subprocesses, the real model, real
Chroma, on small slices of the shared benchmarks (the full runs take tens of minutes; see README, Retrieval).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow

SCIFACT_DOCUMENTS = 300


def archivist(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env())


@pytest.fixture(scope="module")
def scifact_slice(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: the first SciFact documents, and the test queries whose relevant documents are all in it."""
    source = shared_data / "scifact"
    folder = tmp_path_factory.mktemp("scifact-slice")
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:SCIFACT_DOCUMENTS]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept_ids = {json.loads(line)["_id"] for line in lines}
    (folder / "test").mkdir()
    qrels = (source / "test" / "qrels.tsv").read_text(encoding="utf-8").splitlines()
    judged: dict[str, list[str]] = {}
    for line in qrels[1:]:
        query_id, doc_id, _ = line.split("\t")
        judged.setdefault(query_id, []).append(doc_id)
    queries = {query_id for query_id, docs in judged.items() if set(docs) <= kept_ids}
    (folder / "test" / "qrels.tsv").write_text(
        "\n".join([qrels[0], *[line for line in qrels[1:] if line.split("\t")[0] in queries]]) + "\n", encoding="utf-8"
    )
    query_lines = (source / "test" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    kept_queries = [line for line in query_lines if line.strip() and json.loads(line)["_id"] in queries]
    (folder / "test" / "queries.jsonl").write_text("\n".join(kept_queries) + "\n", encoding="utf-8")
    assert len(kept_queries) >= 5
    return folder


def test_eval_beir_prints_the_metrics_contract(scifact_slice: Path, tmp_path: Path) -> None:
    result = archivist("eval", "beir", str(scifact_slice), "--split", "test", "--json", "--data-dir",
                       str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "queries", "latency_ms"} <= set(metrics)
    assert set(metrics["latency_ms"]) == {"p50", "p95"}
    assert metrics["queries"] >= 5 and metrics["documents"] == SCIFACT_DOCUMENTS
    # Among 300 documents the relevant one is nearly always near the top; a broken pipeline scores ~0.
    assert metrics["ndcg@10"] > 0.6 and metrics["recall@100"] > 0.9
    # The first run built the index: every document parsed and embedded.
    assert metrics["ingest"]["indexed"] == SCIFACT_DOCUMENTS and metrics["ingest"]["embedded_texts"] > 0
    # Enough recorded to compare two numbers: the settings, the model, the machine, the package versions.
    assert metrics["settings"]["chunking"]["tokens"] == 200 and metrics["settings"]["mode"] == "hybrid"
    assert metrics["settings"]["embedding_model"]["name"] == "all-MiniLM-L6-v2-int8"
    assert metrics["settings"]["retrieval"]["per_document"] == 1
    assert metrics["machine"]["cpu_flags"] and metrics["machine"]["packages"]["onnxruntime"]

    # A second run reuses the index: every file found unchanged, none parsed or embedded again; the same
    # numbers come out, and each arm runs alone.
    again = archivist("eval", "beir", str(scifact_slice), "--split", "test", "--json", "--data-dir",
                      str(tmp_path / "eval"))
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)
    assert reused["index"] == metrics["index"]
    assert reused["ingest"]["unchanged"] == SCIFACT_DOCUMENTS
    assert reused["ingest"]["indexed"] == 0 and reused["ingest"]["embedded_texts"] == 0
    assert reused["chunks"] == metrics["chunks"]
    assert (reused["ndcg@10"], reused["recall@100"]) == (metrics["ndcg@10"], metrics["recall@100"])
    lexical = archivist("eval", "beir", str(scifact_slice), "--split", "test", "--json", "--mode", "lexical",
                        "--data-dir", str(tmp_path / "eval"))
    assert lexical.returncode == 0, lexical.stderr
    assert json.loads(lexical.stdout)["mode"] == "lexical"


def test_eval_beir_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "title": "t", "text": "x"}\n')
    result = archivist("eval", "beir", str(tmp_path), "--split", "dev", "--data-dir", str(tmp_path / "eval"))
    assert result.returncode != 0
    assert "dev/queries.jsonl" in result.stderr and "Traceback" not in result.stderr


def test_eval_financebench_on_three_filings(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "financebench"
    questions = [json.loads(line) for line in (source / "questions.jsonl").read_text().splitlines() if line.strip()]
    # Short filings (a 10-K takes pypdf about a minute here), with nine questions between them.
    chosen = ["ULTABEAUTY_2023Q4_EARNINGS", "AMCOR_2023Q4_EARNINGS", "JOHNSON_JOHNSON_2023_8K_dated-2023-08-30"]
    folder = tmp_path / "financebench"
    (folder / "pdfs").mkdir(parents=True)
    for name in chosen:
        shutil.copy(source / "pdfs" / f"{name}.pdf", folder / "pdfs")  # copies: links are not followed
    # The questions file as it is: questions about filings not in the folder are left out by the command.
    (folder / "questions.jsonl").write_text((source / "questions.jsonl").read_text())
    result = archivist("eval", "financebench", str(folder), "--json", "--data-dir", str(tmp_path / "eval"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    asked = [q for q in questions if q["doc_name"] in chosen]
    assert metrics["questions"] == len(asked)
    keys = {"doc_hit@5", "page_hit@5", "page_hit@10", "page_recall@5", "page_recall@10"}
    assert keys <= set(metrics)
    assert metrics["doc_hit@5"] > 0.8  # three filings: the right one is nearly always among the top five
    assert metrics["pages"] > 10 and metrics["file_names"] == "financebench"
    # A hit needs one evidence page, recall all of them: never more, and less when a question has several
    # evidence pages and not all are found.
    for k in (5, 10):
        assert 0 <= metrics[f"page_recall@{k}"] <= metrics[f"page_hit@{k}"] <= 1
    assert metrics["page_hit@5"] <= metrics["page_hit@10"]

    # The same filings renamed ("Johnson & Johnson ... 8-K" rather than JOHNSON_JOHNSON_2023_8K_dated-...):
    # the same keys, one JSON document, the library moved rather than parsed and embedded again.
    renamed = archivist("eval", "financebench", str(folder), "--json", "--rename", "--data-dir",
                        str(tmp_path / "eval"))
    assert renamed.returncode == 0, renamed.stderr
    again = json.loads(renamed.stdout)
    assert keys <= set(again) and again["questions"] == metrics["questions"]
    assert again["file_names"] == "renamed" and set(again["renamed"]) == set(chosen)
    assert not any(Path(name).stem in chosen for name in again["renamed"].values())
    assert again["pages"] == metrics["pages"] and again["chunks"] == metrics["chunks"]
    assert again["ingest"]["embedded_texts"] == 0 and again["ingest"]["indexed"] == 0
    assert again["doc_hit@5"] > 0.8
    # --context: quick mode's own prompt for every question (no model called), on the index already built.
    for extra in ([], ["--rename"]):
        packed = archivist("eval", "financebench", str(folder), "--json", "--context", *extra, "--data-dir",
                           str(tmp_path / "eval"))
        assert packed.returncode == 0, packed.stderr
        context = json.loads(packed.stdout)
        assert context["ingest"]["embedded_texts"] == 0 and context["questions"] == metrics["questions"]
        assert 0 <= context["evidence_in_top_sources"] <= context["evidence_in_context"] <= 1
        tokens = context["prompt_tokens"]
        assert tokens["exact"] is True and 0 < tokens["median"] <= tokens["max"] <= 16384
        assert context["context_settings"]["num_ctx"] == 16384
    # The renamed library started from the library's index, its documents moved as ingest moves a renamed
    # file; indexing the renamed files from scratch gives what search sees the same, so the same figures.
    fresh = archivist("eval", "financebench", str(folder), "--json", "--rename", "--data-dir",
                      str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    scratch = json.loads(fresh.stdout)
    assert scratch["ingest"]["indexed"] == len(chosen) and scratch["ingest"]["embedded_texts"] > 0
    figures = [*sorted(keys), "pages", "chunks", "renamed"]
    assert {key: scratch[key] for key in figures} == {key: again[key] for key in figures}
