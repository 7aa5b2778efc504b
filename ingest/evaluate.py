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
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, Self

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

# Part of the evaluation indexes' cache key: bump when parsing or chunking changes what gets indexed.
PARSE_VERSION = 3

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


def load_beir_corpus(folder: Path) -> dict[str, tuple[str, str]]:
    """A BEIR corpus: document id -> (title, text). A missing file is a ConfigError naming it."""
    path = folder / "corpus.jsonl"
    if not path.is_file():
        raise ConfigError(f"Not a BEIR folder: {path} (corpus) is missing.")
    corpus = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            corpus[str(record["_id"])] = (record.get("title") or "", record.get("text") or "")
    return corpus


def load_beir_split(folder: Path, split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """One split's queries (id -> text, only those with judgements) and judgements (query id -> {document
    id: relevance})."""
    paths = {"queries": folder / split / "queries.jsonl", "qrels": folder / split / "qrels.tsv"}
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"Not a BEIR folder: {path} ({name}) is missing.")
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
    return queries, qrels


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
    files = ingester.plan(paths).files
    sink = progress(len(files), "Indexing") if progress else _Silent()
    started = time.perf_counter()
    try:
        ingester.ingest_paths(paths, on_file=sink.advance)
    finally:
        sink.close()
    index.reconcile()
    return time.perf_counter() - started


def write_corpus(corpus: dict[str, tuple[str, str]], folder: Path) -> None:
    """Each corpus document as `<id>.txt` (title, blank line, text); unchanged files are not rewritten."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, (title, text) in corpus.items():
        path = folder / f"{_safe(doc_id)}.txt"
        content = f"{title}\n\n{text}\n" if title else f"{text}\n"
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")


def _backend_key(settings: Settings) -> list[str]:
    """The embedding backend, when not the default, keys its own evaluation index (indexes made before this
    key existed were all int8, and keep their names)."""
    return [settings.embedding_backend] if settings.embedding_backend != "int8" else []


def _safe(doc_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in doc_id)


class _CachedIndexEvaluation:
    """A benchmark's documents ingested once into a cached index (`index_dir`), open while in the `with`
    block; subclasses name the documents and score questions against `self.index`."""

    index_dir: Path

    def __init__(self, settings: Settings, progress: ProgressFactory | None) -> None:
        self.settings = settings
        self.progress = progress
        self.ingest_seconds = 0.0
        self._opened: Any = None
        self.index: Index | None = None

    def _documents(self) -> list[Path]:
        """The files and folders to ingest (made ready on disk first where needed)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        paths = self._documents()
        self._opened = evaluation_index(self.index_dir, self.settings)
        self.index, eval_settings = self._opened.__enter__()
        try:
            self.ingest_seconds = _ingest(self.index, eval_settings, paths, self.progress)
        except BaseException:
            self._opened.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._opened is not None:
            self._opened.__exit__(*exc)
        self._opened = self.index = None


class BeirEvaluation(_CachedIndexEvaluation):
    """A BEIR corpus ingested once into its (cached) index; `score` then runs one split's queries through the
    normal search path with any retrieval settings, so many settings can be compared on one index."""

    def __init__(self, folder: Path, settings: Settings, data_dir: Path | None = None,
                 progress: ProgressFactory | None = None) -> None:
        super().__init__(settings, progress)
        self.folder = folder
        self.corpus = load_beir_corpus(folder)
        corpus_file = folder / "corpus.jsonl"
        stat = corpus_file.stat()
        self.data_dir = data_dir or evaluation_folder(
            f"beir-{folder.name}", corpus_file.resolve(), stat.st_size, stat.st_mtime_ns,
            settings.chunk_tokens, settings.chunk_overlap_tokens, settings.chunk_min_fill,
            settings.embedding_model_dir, PARSE_VERSION, *_backend_key(settings),
        )
        self.by_file = {f"{_safe(doc_id)}.txt": doc_id for doc_id in self.corpus}
        self.index_dir = self.data_dir / "index"

    def _documents(self) -> list[Path]:
        documents_folder = self.data_dir / "documents"
        write_corpus(self.corpus, documents_folder)
        return [documents_folder]

    def score(self, split: str, mode: Mode = "hybrid", tuning: RetrievalSettings | None = None,
              limit: int | None = None) -> dict[str, object]:
        assert self.index is not None, "use BeirEvaluation as a context manager"
        queries, qrels = load_beir_split(self.folder, split)
        # "A document's score is its best chunk's": one chunk per document in the ranking.
        tuning = replace(tuning or RetrievalSettings(), per_document=1)
        query_ids = sorted(queries, key=_numeric_first)[: limit or None]
        sink = self.progress(len(query_ids), f"Searching ({split})") if self.progress else _Silent()
        scores: dict[str, list[float]] = {"ndcg@10": [], "recall@10": [], "recall@100": [], "mrr@10": []}
        latencies = []
        for query_id in query_ids:
            started = time.perf_counter()
            hits = search(self.index, queries[query_id], 100, mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = [self.by_file.get(Path(hit.path).name, "") for hit in hits]
            relevant = qrels[query_id]
            scores["ndcg@10"].append(ndcg_at(ranked, relevant, 10))
            scores["recall@10"].append(recall_at(ranked, relevant, 10))
            scores["recall@100"].append(recall_at(ranked, relevant, 100))
            scores["mrr@10"].append(mrr_at(ranked, relevant, 10))
            sink.advance()
        sink.close()
        result: dict[str, object] = {name: round(mean(values), 4) for name, values in scores.items()}
        result.update(
            queries=len(query_ids),
            latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
            mode=mode, split=split, documents=len(self.corpus), chunks=self.index.catalog.chunk_count(),
            ingest_seconds=round(self.ingest_seconds, 1), index=str(self.data_dir),
        )
        return result


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
    load_beir_split(folder, split)  # a missing split is reported before any indexing
    with BeirEvaluation(folder, settings, data_dir, progress) as evaluation:
        return evaluation.score(split, mode, tuning, limit)


def _numeric_first(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


class FinanceBenchEvaluation(_CachedIndexEvaluation):
    """The FinanceBench PDFs ingested once into one (cached) library index; `score` asks every question whose
    PDF is present through the normal search path."""

    def __init__(self, folder: Path, settings: Settings, data_dir: Path | None = None,
                 progress: ProgressFactory | None = None) -> None:
        self.pdfs = folder / "pdfs"
        questions_file = folder / "questions.jsonl"
        if not self.pdfs.is_dir() or not questions_file.is_file():
            raise ConfigError(f"Not a FinanceBench folder: expected {self.pdfs} and {questions_file}.")
        super().__init__(settings, progress)
        self.present = {path.stem: path for path in self.pdfs.glob("*.pdf")}
        questions = [json.loads(line) for line in questions_file.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        self.questions = [q for q in questions if q["doc_name"] in self.present]
        self.data_dir = data_dir or evaluation_folder(
            "financebench", self.pdfs.resolve(), sorted(self.present), settings.chunk_tokens,
            settings.chunk_overlap_tokens, settings.chunk_min_fill, settings.embedding_model_dir, PARSE_VERSION,
            *_backend_key(settings),
        )
        self.index_dir = self.data_dir

    def _documents(self) -> list[Path]:
        return [self.pdfs]

    def score(self, mode: Mode = "hybrid", tuning: RetrievalSettings | None = None) -> dict[str, object]:
        assert self.index is not None, "use FinanceBenchEvaluation as a context manager"
        hits_at: dict[str, list[float]] = {"doc_hit@5": [], "page_recall@5": [], "page_recall@10": []}
        latencies = []
        sink = self.progress(len(self.questions), "Searching") if self.progress else _Silent()
        for question in self.questions:
            evidence = {(e["doc_name"], int(e["evidence_page_num"]) + 1) for e in question["evidence"]}
            started = time.perf_counter()
            hits = search(self.index, question["question"], 10, mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            pages = [{(Path(h.path).stem, p) for p in range(h.page_start, h.page_end + 1)} for h in hits]
            documents = {Path(h.path).stem for h in hits[:5]}
            hits_at["doc_hit@5"].append(float(question["doc_name"] in documents))
            hits_at["page_recall@5"].append(float(bool(evidence & set().union(*pages[:5]))))
            hits_at["page_recall@10"].append(float(bool(evidence & set().union(*pages[:10]))))
            sink.advance()
        sink.close()
        page_count = sum(d.page_count for d in self.index.catalog.documents() if d.status == "indexed")
        result: dict[str, object] = {"questions": len(self.questions)}
        result.update({name: round(mean(values), 4) for name, values in hits_at.items()})
        result.update(
            latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
            mode=mode, documents=len(self.present), pages=page_count, chunks=self.index.catalog.chunk_count(),
            ingest_seconds=round(self.ingest_seconds, 1), index=str(self.data_dir),
        )
        return result


def eval_financebench(
    folder: Path,
    settings: Settings,
    mode: Mode = "hybrid",
    tuning: RetrievalSettings | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, object]:
    with FinanceBenchEvaluation(folder, settings, data_dir, progress) as evaluation:
        return evaluation.score(mode, tuning)
