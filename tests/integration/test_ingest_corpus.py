"""Every real-world PDF of the shared corpus through the ingest pipeline into real Chroma: each ends indexed
or failed/skipped with a reason, and one bad file never stops the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import Ingester, Outcome
from rag.index.index import open_index
from rag.settings import Settings
from tests.fakes import HashingEmbedder

pytestmark = [pytest.mark.slow, pytest.mark.corpus]


def test_the_whole_pdf_corpus_ingests_without_stopping(shared_data: Path, tmp_path: Path) -> None:
    corpus = shared_data / "pdfs"
    # The hashing embedder keeps this about parsing and bookkeeping; the real model is tested elsewhere.
    index = open_index(tmp_path / "data", HashingEmbedder(dimension=64))
    try:
        report = Ingester(index, Settings(data_dir=tmp_path / "data")).ingest_paths([corpus])
        outcomes = {Path(r.path).relative_to(corpus).as_posix(): (r.outcome, r.reason) for r in report.results}
        pdfs = [p for p in outcomes if p.lower().endswith(".pdf")]
        assert len(pdfs) >= 100
        indexed = [p for p in pdfs if outcomes[p][0] == Outcome.INDEXED]
        failed = {p: outcomes[p][1] for p in pdfs if outcomes[p][0] == Outcome.FAILED}
        assert len(indexed) >= 80, failed
        assert all(reason for reason in failed.values())
        assert failed["pdfplumber-tests/empty.pdf"] == "empty file (0 bytes)"
        assert failed["pdfplumber-tests/password-example.pdf"] == "encrypted: needs a password"
        assert "pypdf-resources/encryption_r6-empty-password.pdf" in indexed
        assert index.catalog.all_chunk_ids() == index.vectors.ids()
        counts = index.catalog.status_counts()
        assert counts["indexed"] == len(indexed) and counts["failed"] == len(failed)
    finally:
        index.close()
