"""BEIR-format benchmarks (`corpus.jsonl`, `<split>/queries.jsonl`, `<split>/qrels.tsv`), e.g. SciFact, through
the product's own code paths: each corpus document becomes a text file that the ingest pipeline indexes, and
every query goes through `rag.search.retrieve.search`; a document's score is its best chunk's. Nothing is
special-cased for evaluation."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from evaluation.cache import CachedIndexEvaluation, ProgressFactory, evaluation_folder, index_key, sink
from evaluation.metrics import mean, mrr_at, ndcg_at, percentile, recall_at
from evaluation.record import run_record
from rag.errors import ConfigError
from rag.search.retrieve import Mode, RetrievalSettings, search
from rag.settings import Settings


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


# File names keep ASCII letters, digits, "-" and "." (SciFact's numeric ids stay as they were); anything else,
# "_" included, is written as "_" and two hex digits per UTF-8 byte, so no two ids share a name. (`_safe`, before,
# turned every other character into "_": "a/b" and "a_b" became one file, and one of them was never indexed.)
_KEPT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_MAX_NAME = 200  # characters; file systems allow 255 bytes, and ".txt" follows


def file_name(doc_id: str) -> str:
    """The file a corpus document is written to: a different name for every id (see `_KEPT`)."""
    stem = "".join(c if c in _KEPT else "".join(f"_{byte:02x}" for byte in c.encode()) for c in doc_id)
    if not stem or len(stem) > _MAX_NAME:
        # A prefix and the digest of the whole id, after a "~" that no other name holds.
        stem = f"{stem[:_MAX_NAME - 17]}~{hashlib.sha256(doc_id.encode()).hexdigest()[:16]}"
    return f"{stem}.txt"


def file_names(doc_ids: Iterable[str]) -> dict[str, str]:
    """File name -> document id for a corpus. Ids that differ only in letter case would share a file on a
    case-insensitive file system (macOS, Windows): a ConfigError naming them rather than a silently lost
    document."""
    by_file: dict[str, str] = {}
    folded: dict[str, str] = {}
    for doc_id in doc_ids:
        name = file_name(doc_id)
        other = folded.setdefault(name.casefold(), doc_id)
        if other != doc_id:
            raise ConfigError(f"Corpus ids {other!r} and {doc_id!r} differ only in letter case; their files "
                              "would be one on a case-insensitive file system.")
        by_file[name] = doc_id
    return by_file


def document_text(title: str, text: str) -> str:
    """A corpus document as its file holds it: the title, a blank line, the text."""
    return f"{title}\n\n{text}\n" if title else f"{text}\n"


def write_corpus(corpus: dict[str, tuple[str, str]], folder: Path) -> dict[str, str]:
    """Each corpus document as `file_name(id)` (`document_text`); unchanged files are not rewritten. Returns
    file name -> document id."""
    folder.mkdir(parents=True, exist_ok=True)
    by_file = file_names(corpus)
    for name, doc_id in by_file.items():
        path = folder / name
        content = document_text(*corpus[doc_id])
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
    return by_file


class BeirEvaluation(CachedIndexEvaluation):
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
            f"beir-{folder.name}", corpus_file.resolve(), stat.st_size, stat.st_mtime_ns, *index_key(settings),
        )
        self.by_file = file_names(self.corpus)
        self.index_dir = self.data_dir / "index"

    def _documents(self) -> list[Path]:
        documents_folder = self.data_dir / "documents"
        write_corpus(self.corpus, documents_folder)
        return [documents_folder]

    def score(self, split: str, mode: Mode = "hybrid", tuning: RetrievalSettings | None = None,
              limit: int | None = None) -> dict[str, object]:
        index = self._open()
        queries, qrels = load_beir_split(self.folder, split)
        # "A document's score is its best chunk's": one chunk per document in the ranking.
        tuning = replace(tuning or self.settings.retrieval, per_document=1)
        query_ids = sorted(queries, key=_numeric_first)[: limit or None]
        bar = sink(self.progress, len(query_ids), f"Searching ({split})")
        scores: dict[str, list[float]] = {"ndcg@10": [], "recall@10": [], "recall@100": [], "mrr@10": []}
        latencies = []
        for query_id in query_ids:
            started = time.perf_counter()
            hits = search(index, queries[query_id], 100, mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = [self.by_file.get(Path(hit.path).name, "") for hit in hits]
            relevant = qrels[query_id]
            scores["ndcg@10"].append(ndcg_at(ranked, relevant, 10))
            scores["recall@10"].append(recall_at(ranked, relevant, 10))
            scores["recall@100"].append(recall_at(ranked, relevant, 100))
            scores["mrr@10"].append(mrr_at(ranked, relevant, 10))
            bar.advance()
        bar.close()
        result: dict[str, object] = {name: round(mean(values), 4) for name, values in scores.items()}
        result.update(
            queries=len(query_ids),
            latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
            mode=mode, split=split, documents=len(self.corpus), chunks=index.catalog.chunk_count(),
            **self.index_facts(),
        )
        result.update(run_record(self.settings, mode=mode, retrieval=tuning))
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
