"""Ingest benchmark: how fast the product indexes real documents, against plain sentence-transformers.

For each corpus (SciFact's 5,183 abstracts as one .txt file each; FinanceBench's 74 PDFs), it ingests
through the product's own code path (`open_default_index` + `Ingester`, default settings, the default
embedder) into a temporary data folder, then times plain `SentenceTransformer(model_dir).encode(texts)`
(default settings, fp32) on the same chunk texts, and compares the two sets of vectors.

Prints one JSON document on stdout; progress goes to stderr. Never fails on a number: it measures.

Then the incremental updates of bench/incremental.py: an edit saved with the watcher running, timed until
search finds the new text (a paragraph of a 100-page Markdown file; a page of a 117-page PDF).

    .venv/bin/python bench/ingest.py [--only scifact|financebench|incremental] [--limit N]
                                     [--baseline-sample N] [--cold]

Another case measured on an ingested corpus (a move, a deletion…) is a function added to
INCREMENTAL_CASES: it gets the CaseContext after the full ingest and returns a dict of numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script (`python bench/ingest.py`)

import incremental  # noqa: E402  (bench/incremental.py, beside this file)
import numpy as np  # noqa: E402
from cpu import cpu_facts  # noqa: E402  (bench/cpu.py)

from ingest.pipeline import FileResult, Ingester, Outcome  # noqa: E402
from rag import offline  # noqa: E402,F401  (switches hub access off; rag.index.embedder imports it first anyway)
from rag.factory import open_default_index  # noqa: E402
from rag.index.embedder import packaged_model_dir  # noqa: E402
from rag.index.index import Index, embedding_text  # noqa: E402
from rag.index.local_model import SentenceTransformerEmbedder  # noqa: E402
from rag.records import Vectors  # noqa: E402
from rag.settings import Settings  # noqa: E402

logger = logging.getLogger("bench.ingest")


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or wherever ARCHIVIST_SHARED_DATA points."""
    return Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")


def progress(message: str) -> None:
    print(f"[bench-ingest {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----- corpora -----
@dataclass(frozen=True)
class Corpus:
    """A folder of documents to ingest."""

    name: str
    folder: Path
    documents: int


def scifact_corpus(shared: Path, workdir: Path, limit: int | None) -> Corpus:
    """Each SciFact abstract as a .txt file: title, a blank line, the text."""
    source = shared / "scifact" / "corpus.jsonl"
    folder = workdir / "scifact"
    folder.mkdir()
    count = 0
    with source.open(encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and count >= limit:
                break
            record = json.loads(line)
            (folder / f"{record['_id']}.txt").write_text(record["title"] + "\n\n" + record["text"], encoding="utf-8")
            count += 1
    return Corpus("scifact", folder, count)


def financebench_corpus(shared: Path, workdir: Path, limit: int | None) -> Corpus:
    """The FinanceBench PDFs, read in place (or the first `limit` of them, copied)."""
    source = shared / "financebench" / "pdfs"
    pdfs = sorted(source.glob("*.pdf"))
    if limit is None:
        return Corpus("financebench", source, len(pdfs))
    folder = workdir / "financebench"
    folder.mkdir()
    for pdf in pdfs[:limit]:
        shutil.copy2(pdf, folder / pdf.name)
    return Corpus("financebench", folder, min(limit, len(pdfs)))


CORPORA: dict[str, Callable[[Path, Path, int | None], Corpus]] = {
    "scifact": scifact_corpus,
    "financebench": financebench_corpus,
}
REQUIRED = {"scifact": Path("scifact/corpus.jsonl"), "financebench": Path("financebench/pdfs"),
            "incremental": incremental.GEOTOPO}


# ----- measuring -----
class PeakRss:
    """Peak resident memory of this process while the block runs, sampled every 50 ms (psutil), or the
    process's lifetime peak where psutil is absent."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        try:
            import psutil
        except ImportError:
            return self
        process = psutil.Process()

        def sample() -> None:
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, process.memory_info().rss)

        self.peak = process.memory_info().rss
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self.peak = lifetime_peak_rss()


def lifetime_peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def mib(value: int) -> float:
    return round(value / 2**20, 1)


def rate(count: float, seconds: float) -> float | None:
    """Per second, to four significant digits (FinanceBench ingests about 0.01 documents a second)."""
    return float(f"{count / seconds:.4g}") if seconds > 0 else None


@contextmanager
def timed_embedding(embedder: Any) -> Iterator[list[float]]:
    """Adds up the seconds spent in the embedder's `embed_batch` (the model's share of an ingest)."""
    spent = [0.0]
    original = embedder.embed_batch

    def embed_batch(texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        try:
            result: Vectors = original(texts)
            return result
        finally:
            spent[0] += time.perf_counter() - started

    embedder.embed_batch = embed_batch
    try:
        yield spent
    finally:
        del embedder.embed_batch  # back to the class's method


@dataclass
class CaseContext:
    """One ingested corpus, for the cases measured after the full ingest (incremental updates)."""

    corpus: Corpus
    settings: Settings
    index: Index
    ingester: Ingester
    workdir: Path
    chunk_texts: list[str] = field(default_factory=list)  # unique embedded texts, in catalog order
    vectors: Vectors | None = None  # the product's vectors for chunk_texts


def ingest_corpus(corpus: Corpus, settings: Settings, workdir: Path) -> tuple[dict[str, Any], CaseContext]:
    """Ingest a corpus with the product's code path, cold (fresh data folder), and report the numbers."""
    index = open_default_index(settings)
    started = time.perf_counter()
    embedder = index.embedder  # load the model now, so its load time is reported apart from the ingest
    load_seconds = time.perf_counter() - started
    ingester = Ingester(index, settings)
    last = [time.perf_counter(), 0]

    def on_file(result: FileResult) -> None:
        last[1] += 1
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            progress(f"{corpus.name}: {last[1]}/{corpus.documents} files")

    with PeakRss() as memory, timed_embedding(embedder) as embed_seconds:
        started = time.perf_counter()
        report = ingester.ingest_paths([corpus.folder], on_file=on_file)
        seconds = time.perf_counter() - started
    indexed = report.of(Outcome.INDEXED, Outcome.MOVED)
    documents = index.catalog.documents()
    pages = sum(document.page_count for document in documents if document.status == "indexed")
    ids = sorted(index.catalog.all_chunk_ids())
    rows = index.catalog.chunks_by_id(ids)
    texts = {row.text_hash: embedding_text(row.text, row.headings) for row in rows.values()}
    # The vectors live in the vector store (the catalog caches only text no chunk holds any more).
    stored = index.vectors.vectors(ids)
    cached = {row.text_hash: stored[chunk_id] for chunk_id, row in rows.items() if chunk_id in stored}
    hashes = [digest for digest in texts if digest in cached]
    context = CaseContext(corpus, settings, index, ingester, workdir, [texts[digest] for digest in hashes],
                          np.stack([cached[digest] for digest in hashes]) if hashes else None)
    result = {
        "documents": len(indexed),
        "failed_or_skipped": len(report.of(Outcome.FAILED, Outcome.SKIPPED)),
        "pages": pages,
        "chunks": len(ids),
        "embedded_texts": report.embedded,
        "seconds": round(seconds, 2),
        "documents_per_s": rate(len(indexed), seconds),
        "pages_per_s": rate(pages, seconds),
        "chunks_per_s": rate(len(ids), seconds),
        "embedding_seconds": round(embed_seconds[0], 2),  # inside embed_batch; the rest is parse/chunk/write
        "embedding_chunks_per_s": rate(report.embedded, embed_seconds[0]),
        "peak_rss_mib": mib(memory.peak),
        "model": model_facts(embedder, load_seconds),
    }
    return result, context


def model_facts(embedder: Any, load_seconds: float) -> dict[str, Any]:
    facts: dict[str, Any] = {"name": embedder.name, "load_seconds": round(load_seconds, 2)}
    if isinstance(embedder, SentenceTransformerEmbedder):
        facts.update(backend=embedder.backend, built_now=embedder.built,
                     file=str(embedder.model_file) if embedder.model_file else None)
    return facts


class Baseline:
    """Plain fp32 sentence-transformers with its default settings, loaded once for every corpus."""

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        started = time.perf_counter()
        self.model = SentenceTransformer(str(packaged_model_dir()))
        self.load_seconds = time.perf_counter() - started

    def measure(self, context: CaseContext, documents: int, sample: int, ingest: dict[str, Any]) -> dict[str, Any]:
        """Time `encode` on the corpus's chunk texts (all, or a fixed random sample) and compare vectors."""
        texts = context.chunk_texts
        if not texts or context.vectors is None:
            return {"skipped": "no chunk texts"}
        picked = np.arange(len(texts))
        if 0 < sample < len(texts):
            picked = np.sort(np.random.default_rng(0).choice(len(texts), size=sample, replace=False))
        chosen = [texts[i] for i in picked]
        self.model.encode(chosen[:16])  # warm-up, as the product's own first batch is not timed apart either
        progress(f"{context.corpus.name}: baseline encode of {len(chosen)} of {len(texts)} chunk texts")
        started = time.perf_counter()
        reference = np.asarray(self.model.encode(chosen), dtype=np.float32)
        seconds = time.perf_counter() - started
        chunks_per_s = len(chosen) / seconds
        # Rates for the whole corpus, assuming the sample is typical (it is drawn uniformly).
        seconds_all = seconds * len(texts) / len(chosen)
        reference /= np.linalg.norm(reference, axis=1, keepdims=True)
        ours = context.vectors[picked]
        similarity = (ours * reference).sum(axis=1) / np.linalg.norm(ours, axis=1)
        return {
            "texts_timed": len(chosen),
            "texts_total": len(texts),
            "seconds_timed": round(seconds, 2),
            "seconds_for_all_estimated": round(seconds_all, 2),
            "chunks_per_s": rate(len(chosen), seconds),
            "documents_per_s": rate(documents, seconds_all),
            # the same documents: the ratio of times is the ratio of rates, without rounding
            "speedup_end_to_end": round(seconds_all / ingest["seconds"], 2) if ingest["seconds"] else None,
            "speedup_embedding_only": (
                round(ingest["embedding_chunks_per_s"] / chunks_per_s, 2) if ingest["embedding_chunks_per_s"] else None
            ),
            "cosine_to_fp32": {
                "mean": round(float(similarity.mean()), 5),
                "min": round(float(similarity.min()), 5),
                "p01": round(float(np.quantile(similarity, 0.01)), 5),
            },
        }


# ----- incremental updates (more cases go here) -----
IncrementalCase = Callable[[CaseContext], dict[str, Any]]


def rescan_unchanged(context: CaseContext) -> dict[str, Any]:
    """The same folder again, nothing changed: what a start-up scan costs."""
    started = time.perf_counter()
    report = context.ingester.ingest_paths([context.corpus.folder])
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "unchanged": len(report.of(Outcome.UNCHANGED)),
            "embedded_texts": report.embedded}


INCREMENTAL_CASES: dict[str, IncrementalCase] = {"rescan_unchanged": rescan_unchanged}


# ----- the run -----
def run_corpus(name: str, shared: Path, args: argparse.Namespace, baseline: Baseline | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"archivist-bench-{name}-") as scratch:
        workdir = Path(scratch)
        corpus = CORPORA[name](shared, workdir, args.limit)
        progress(f"{name}: ingesting {corpus.documents} documents from {corpus.folder}")
        overrides: dict[str, Any] = {"data_dir": workdir / "data"}
        if args.cold:
            overrides["embedding_cache_dir"] = workdir / "model-cache"
        settings = Settings(**overrides)
        result, context = ingest_corpus(corpus, settings, workdir)
        progress(f"{name}: {result['documents']} documents, {result['chunks']} chunks in {result['seconds']} s")
        try:
            result["incremental"] = {case: measure(context) for case, measure in INCREMENTAL_CASES.items()}
            if baseline is not None:
                result["baseline_fp32_sentence_transformers"] = baseline.measure(
                    context, result["documents"], args.baseline_sample, result
                )
        finally:
            context.index.close()
        return result


def machine() -> dict[str, Any]:
    import onnxruntime
    import torch

    return {**cpu_facts(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=[*sorted(CORPORA), "incremental"],
                        help="one corpus, or only the incremental-update timings, instead of all")
    parser.add_argument("--limit", type=int, help="at most N documents per corpus (a quick run)")
    parser.add_argument("--baseline-sample", type=int, default=3000, metavar="N",
                        help="time the fp32 baseline on N random chunk texts per corpus (0: all; default 3000)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fp32 baseline and the comparison")
    parser.add_argument("--cold", action="store_true",
                        help="an empty model cache: the int8 model is made during the run and its time reported")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")

    shared = shared_data_dir()
    names = [args.only] if args.only else [*CORPORA, "incremental"]
    missing = [str(shared / REQUIRED[name]) for name in names if not (shared / REQUIRED[name]).exists()]
    if missing:
        print(f"bench/ingest.py: the shared data is absent ({', '.join(missing)}). Put the shared folder beside "
              "the checkout (../shared/data) or point ARCHIVIST_SHARED_DATA at its data folder.", file=sys.stderr)
        return 2

    corpora = [name for name in names if name in CORPORA]
    baseline = None if args.no_baseline or not corpora else Baseline()
    output: dict[str, Any] = {
        "benchmark": "ingest",
        "settings": {"defaults": True, "limit": args.limit, "baseline_sample": args.baseline_sample,
                     "cold_model_cache": args.cold},
        "machine": machine(),
        "baseline_model_load_seconds": round(baseline.load_seconds, 2) if baseline else None,
        "corpora": {},
    }
    started = time.perf_counter()
    for name in corpora:
        output["corpora"][name] = run_corpus(name, shared, args, baseline)
    if "incremental" in names:
        output["incremental_updates"] = incremental.run(shared, progress=progress)
    output["process_peak_rss_mib"] = mib(lifetime_peak_rss())
    output["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
