"""Evaluation on public benchmarks through the product's own code paths: the ingest pipeline builds the index
from files, and every question goes through `rag.retrieve.search`. Nothing is special-cased for evaluation.

- BEIR format (`corpus.jsonl`, `<split>/queries.jsonl`, `<split>/qrels.tsv`), e.g. SciFact: each corpus
  document becomes a text file; a document's score is its best chunk's.
- FinanceBench: the 10-K PDFs in one library, as a user would have them; a question is a hit when one of
  its evidence pages is among the pages of the top-k chunks.

Indexes are kept in Archivist's cache folder, keyed by the corpus and the chunking settings, so a second
run (to try other retrieval settings) only searches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import platformdirs

from ingest.pipeline import FileResult, Ingester
from rag.errors import ConfigError
from rag.factory import open_default_index
from rag.index import Index
from rag.lock import WriterLock
from rag.metrics import mean, mrr_at, ndcg_at, percentile, recall_at
from rag.retrieve import Mode, RetrievalSettings, search
from rag.settings import Settings

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[int, str], "ProgressSink"]


class ProgressSink(Protocol):
    """Where long evaluation work reports progress; the CLI passes a progress bar."""

    def advance(self, result: FileResult | None = None) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def advance(self, result: FileResult | None = None) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class BeirData:
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]  # id -> text, only those with judgements
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance}


def load_beir(folder: Path, split: str) -> BeirData:
    """Read a BEIR-format folder; a missing file is a ConfigError naming it."""
    paths = {"corpus": folder / "corpus.jsonl", "queries": folder / split / "queries.jsonl",
             "qrels": folder / split / "qrels.tsv"}
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"Not a BEIR folder: {path} ({name}) is missing.")
    corpus = {}
    for line in paths["corpus"].read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            corpus[str(record["_id"])] = (record.get("title") or "", record.get("text") or "")
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(paths["qrels"].read_text(encoding="utf-8").splitlines()):
        parts = line.split("\t")
        if len(parts) < 3 or (number == 0 and not parts[2].strip().lstrip("-").isdigit()):
            continue  # the header
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = {}
    for line in paths["queries"].read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if str(record["_id"]) in qrels:
                queries[str(record["_id"])] = record["text"]
    return BeirData(corpus, queries, qrels)


def evaluation_folder(name: str, *parts: object) -> Path:
    """A cache folder for one benchmark index, keyed by everything that shapes the index."""
    key = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:12]
    return Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "eval" / f"{name}-{key}"


@contextmanager
def evaluation_index(data_dir: Path, settings: Settings) -> Iterator[tuple[Index, Settings]]:
    eval_settings = settings.model_copy(update={"data_dir": data_dir})
    with WriterLock(data_dir):
        index = open_default_index(eval_settings)
        try:
            yield index, eval_settings
        finally:
            index.close()


def _ingest(index: Index, settings: Settings, paths: list[Path], progress: ProgressFactory | None) -> float:
    ingester = Ingester(index, settings)
    files, _ = ingester.plan(paths)
    sink = progress(len(files), "Indexing") if progress else _Silent()
    started = time.perf_counter()
    try:
        ingester.ingest_paths(paths, on_file=sink.advance)
    finally:
        sink.close()
    index.reconcile()
    return time.perf_counter() - started


def write_corpus(data: BeirData, folder: Path) -> None:
    """Each corpus document as `<id>.txt` (title, blank line, text); unchanged files are not rewritten."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, (title, text) in data.corpus.items():
        path = folder / f"{_safe(doc_id)}.txt"
        content = f"{title}\n\n{text}\n" if title else f"{text}\n"
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")


def _safe(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


def eval_beir(
    folder: Path,
    split: str,
    settings: Settings,
    mode: Mode = "hybrid",
    tuning: RetrievalSettings | None = None,
    data_dir: Path | None = None,
    limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, object]:
    data = load_beir(folder, split)
    corpus_file = folder / "corpus.jsonl"
    stat = corpus_file.stat()
    data_dir = data_dir or evaluation_folder(
        f"beir-{folder.name}", corpus_file.resolve(), stat.st_size, stat.st_mtime_ns,
        settings.chunk_tokens, settings.chunk_overlap_tokens, settings.embedding_model_dir,
    )
    documents_folder = data_dir / "documents"
    write_corpus(data, documents_folder)
    by_file = {f"{_safe(doc_id)}.txt": doc_id for doc_id in data.corpus}
    # "A document's score is its best chunk's": one chunk per document in the ranking.
    tuning = tuning or RetrievalSettings()
    tuning = RetrievalSettings(**{**tuning.__dict__, "per_document": 1})
    query_ids = sorted(data.queries, key=_numeric_first)[: limit or None]
    with evaluation_index(data_dir / "index", settings) as (index, eval_settings):
        ingest_seconds = _ingest(index, eval_settings, [documents_folder], progress)
        sink = progress(len(query_ids), "Searching") if progress else _Silent()
        scores: dict[str, list[float]] = {"ndcg@10": [], "recall@10": [], "recall@100": [], "mrr@10": []}
        latencies = []
        for query_id in query_ids:
            started = time.perf_counter()
            hits = search(index, data.queries[query_id], 100, mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = [by_file.get(Path(hit.path).name, "") for hit in hits]
            relevant = data.qrels[query_id]
            scores["ndcg@10"].append(ndcg_at(ranked, relevant, 10))
            scores["recall@10"].append(recall_at(ranked, relevant, 10))
            scores["recall@100"].append(recall_at(ranked, relevant, 100))
            scores["mrr@10"].append(mrr_at(ranked, relevant, 10))
            sink.advance()
        sink.close()
        chunks = index.catalog.chunk_count()
    result: dict[str, object] = {name: round(mean(values), 4) for name, values in scores.items()}
    result.update(
        queries=len(query_ids),
        latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
        mode=mode, split=split, documents=len(data.corpus), chunks=chunks,
        ingest_seconds=round(ingest_seconds, 1), index=str(data_dir),
    )
    return result


def _numeric_first(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def eval_financebench(
    folder: Path,
    settings: Settings,
    mode: Mode = "hybrid",
    tuning: RetrievalSettings | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, object]:
    pdfs = folder / "pdfs"
    questions_file = folder / "questions.jsonl"
    if not pdfs.is_dir() or not questions_file.is_file():
        raise ConfigError(f"Not a FinanceBench folder: expected {pdfs} and {questions_file}.")
    present = {path.stem: path for path in pdfs.glob("*.pdf")}
    questions = [json.loads(line) for line in questions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [q for q in questions if q["doc_name"] in present]
    data_dir = data_dir or evaluation_folder(
        "financebench", pdfs.resolve(), sorted(present), settings.chunk_tokens, settings.chunk_overlap_tokens,
        settings.embedding_model_dir,
    )
    hits_at = {"doc_hit@5": [], "page_recall@5": [], "page_recall@10": []}  # type: dict[str, list[float]]
    latencies = []
    with evaluation_index(data_dir, settings) as (index, eval_settings):
        ingest_seconds = _ingest(index, eval_settings, [pdfs], progress)
        sink = progress(len(questions), "Searching") if progress else _Silent()
        for question in questions:
            evidence = {(e["doc_name"], int(e["evidence_page_num"]) + 1) for e in question["evidence"]}
            started = time.perf_counter()
            hits = search(index, question["question"], 10, mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            pages = [{(Path(h.path).stem, p) for p in range(h.page_start, h.page_end + 1)} for h in hits]
            documents = {Path(h.path).stem for h in hits[:5]}
            hits_at["doc_hit@5"].append(float(question["doc_name"] in documents))
            hits_at["page_recall@5"].append(float(bool(evidence & set().union(*pages[:5]))))
            hits_at["page_recall@10"].append(float(bool(evidence & set().union(*pages[:10]))))
            sink.advance()
        sink.close()
        page_count = sum(d.page_count for d in index.catalog.documents() if d.status == "indexed")
    result: dict[str, object] = {"questions": len(questions)}
    result.update({name: round(mean(values), 4) for name, values in hits_at.items()})
    result.update(
        latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
        mode=mode, documents=len(present), pages=page_count, ingest_seconds=round(ingest_seconds, 1),
        index=str(data_dir),
    )
    return result
