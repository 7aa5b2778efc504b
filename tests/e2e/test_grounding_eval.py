"""`archivist eval grounding` end to end: a real subprocess and the real model, on a slice of SciFact train
(the full splits are measured by hand; see rag/answer/support.py for the numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow


def archivist(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env())


@pytest.mark.corpus
def test_eval_grounding_prints_the_metrics_contract(shared_data: Path) -> None:
    result = archivist("eval", "grounding", str(shared_data / "scifact"), "--split", "train", "--limit", "20",
                       "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)  # exactly one JSON document
    assert {"claims", "quote_accuracy@1", "quote_accuracy@3", "evidence_sets", "quote_accuracy@1_whole_abstract",
            "quote_accuracy@3_whole_abstract", "evidence_sets_whole_abstract", "settings", "machine"} <= set(metrics)
    assert metrics["claims"] == 20 and metrics["split"] == "train" and metrics["scorer"] == "embedding"
    assert 0 <= metrics["quote_accuracy@1"] <= metrics["quote_accuracy@3"] <= 1
    # Scored on the passages the product shows: the abstracts are cut into chunks of at most 200 tokens, so a
    # pair gives at least one passage (every chunk holding gold), often more.
    assert metrics["passages"] >= metrics["claims"] and metrics["chunks_per_abstract"] > 1
    assert metrics["settings"]["chunking"]["tokens"] == 200 and metrics["settings"]["support"]["heading_penalty"] >= 0
    # Abstracts hold about ten sentences and one to three gold ones: a scorer that picked at random would get
    # about 0.2 at @1; a broken one (wrong offsets, the title every time) gets about 0.
    assert metrics["quote_accuracy@1"] >= 0.3 and metrics["quote_accuracy@3"] >= 0.6
    sets = metrics["evidence_sets"]
    assert sets["count"] >= 20 and 0 <= sets["quote_accuracy@1"] <= sets["quote_accuracy@3"] <= 1


@pytest.mark.corpus
def test_eval_grounding_without_json_prints_a_summary(shared_data: Path) -> None:
    result = archivist("eval", "grounding", str(shared_data / "scifact"), "--split", "train", "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert "SciFact train: 3 claim-evidence pairs" in result.stdout
    assert "quote accuracy@1:" in result.stdout and "quote accuracy@3:" in result.stdout
    assert "whole abstracts with their title (as before)" in result.stdout


def test_eval_grounding_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "title": "t", "text": "x"}\n')
    result = archivist("eval", "grounding", str(tmp_path), "--split", "train")
    assert result.returncode != 0
    assert "corpus_sentences.jsonl" in result.stderr and "Traceback" not in result.stderr
