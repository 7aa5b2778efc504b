"""Query benchmark: retrieval latency over an index of 100,000 chunks, hybrid and each arm alone.

The index is made from real text: the chunks of the SciFact and FinanceBench evaluation indexes (built
through the normal ingest path by `evaluation.beir`, cached, so a second run starts at once), repeated as
variants (sentences rotated, a variant tag added) until there are 100,000 chunks. A variant's vector is its
original's with a little noise, renormalised: embedding 100,000 texts would take this machine most of an
hour, and the nearest-neighbour search does not care where the vectors came from. The variants are written
through `Index.write_documents`, so the catalog, its full-text index and Chroma hold them as they would a
user's files. The bench index is cached too.

Then every SciFact test query and every FinanceBench question is searched (k = 10, default settings), after
a warm-up, in each mode; the latencies cover `rag.search.retrieve.search` (query embedding, Chroma, FTS5, fusion,
reading the chunks), not the LLM.

    .venv/bin/python bench/query.py [--chunks N] [--rounds R]

Prints JSON on stdout; progress on stderr. Never fails on a number: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script

import numpy as np  # noqa: E402
import platformdirs  # noqa: E402

from evaluation.beir import BeirEvaluation, load_beir_split  # noqa: E402
from evaluation.cache import PARSE_VERSION  # noqa: E402
from evaluation.financebench import FinanceBenchEvaluation  # noqa: E402
from evaluation.metrics import percentile  # noqa: E402
from rag.factory import open_default_index  # noqa: E402
from rag.index.index import DocumentWrite, FileFacts, Index, NewChunk, text_hash  # noqa: E402
from rag.search.retrieve import MODES, search  # noqa: E402
from rag.settings import Settings  # noqa: E402

DOCUMENTS_PER_WRITE = 1000  # about 12,000 chunks: one progress line each
NOISE = 0.05


def progress(message: str) -> None:
    print(f"[bench-query {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def source_chunks(index: Index) -> Iterator[tuple[str, str, list[tuple[NewChunk, np.ndarray]]]]:
    """(document path, kind, [(chunk, vector)]) for every indexed document of an evaluation index."""
    catalog = index.catalog
    for document in catalog.documents():
        if document.status != "indexed":
            continue
        rows = catalog.chunks_of(document.id)
        # The vectors live in the vector store (the catalog caches only text no chunk holds any more).
        vectors = index.vectors.vectors([row.id for row in rows])
        chunks = [(NewChunk(row.text, row.page_start, row.page_end, row.headings), vectors[row.id])
                  for row in rows if row.id in vectors]
        if chunks:
            yield document.path, document.kind or "text", chunks


def variant(chunk: NewChunk, number: int) -> NewChunk:
    """The chunk's sentences rotated by `number`, tagged: a different text with the same words."""
    sentences = chunk.text.split(". ")
    turn = number % len(sentences)
    text = ". ".join(sentences[turn:] + sentences[:turn]) + f" (variant {number})"
    return NewChunk(text, chunk.page_start, chunk.page_end, chunk.headings)


def build(target: Path, sources: list[tuple[str, str, list[tuple[NewChunk, np.ndarray]]]], chunks: int,
          settings: Settings) -> None:
    """Write the sources, then their variants, until the index holds `chunks` chunks."""
    index = open_default_index(settings.model_copy(update={"data_dir": target}))
    rng = np.random.default_rng(0)
    model = index.embedder.name
    try:
        written, round_number = index.catalog.chunk_count(), 0
        while written < chunks:
            writes, cache = [], {}
            for number, (path, kind, items) in enumerate(sources):
                if written >= chunks:
                    break
                picked = items[: chunks - written]
                new = [(variant(chunk, round_number) if round_number else chunk, vector) for chunk, vector in picked]
                for chunk, vector in new:
                    noisy = vector if not round_number else vector + NOISE * rng.standard_normal(vector.shape)
                    cache[text_hash(chunk.embedding_text)] = (noisy / np.linalg.norm(noisy)).astype(np.float32)
                name = f"{Path(path).stem}--v{round_number}{Path(path).suffix}"
                facts = FileFacts(f"/bench/{kind}/{name}", f"{name}-{number}", 1, 1)
                writes.append(DocumentWrite(facts, kind, max(c.page_end for c, _ in new), tuple(c for c, _ in new)))
                written += len(new)
                if len(writes) == DOCUMENTS_PER_WRITE:
                    index.catalog.cache_vectors(model, cache)
                    index.write_documents(writes)
                    writes, cache = [], {}
                    progress(f"{written:,} / {chunks:,} chunks")
            if writes:
                index.catalog.cache_vectors(model, cache)
                index.write_documents(writes)
            round_number += 1
    finally:
        index.close()


def queries(shared: Path) -> list[str]:
    scifact, _ = load_beir_split(shared / "scifact", "test")
    questions = [json.loads(line)["question"]
                 for line in (shared / "financebench" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    return list(scifact.values()) + questions


def peak_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the bench index (default 100,000)")
    parser.add_argument("--rounds", type=int, default=1, help="times each query is searched per mode (default 1)")
    args = parser.parse_args()
    shared = Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (shared / "scifact" / "corpus.jsonl").is_file() or not (shared / "financebench" / "pdfs").is_dir():
        print(f"bench/query.py: the shared data is absent under {shared}.", file=sys.stderr)
        return 2
    settings = Settings()
    target = (Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "bench"
              / f"query-{args.chunks}-{PARSE_VERSION}-{settings.chunking.tokens}")
    done_marker = target / "complete"
    started = time.perf_counter()
    cached = done_marker.exists()
    if not cached:
        progress("reading the evaluation indexes (building them the first time: tens of minutes)")
        sources: list[tuple[str, str, list[tuple[NewChunk, np.ndarray]]]] = []
        with BeirEvaluation(shared / "scifact", settings) as beir:
            assert beir.index is not None
            sources += list(source_chunks(beir.index))
        with FinanceBenchEvaluation(shared / "financebench", settings) as finance:
            assert finance.index is not None
            sources += list(source_chunks(finance.index))
        progress(f"{sum(len(items) for _, _, items in sources):,} source chunks; writing the bench index")
        build(target, sources, args.chunks, settings)
        done_marker.write_text("ok\n")
    build_seconds = time.perf_counter() - started

    index = open_default_index(settings.model_copy(update={"data_dir": target}))
    try:
        chunk_count = index.catalog.chunk_count()
        vector_count = index.vectors.count()
        asked = queries(shared)
        for query in asked[:20]:  # warm-up: model, Chroma's index in memory, SQLite pages
            search(index, query, 10)
        result: dict[str, Any] = {}
        for mode in ("hybrid", *[m for m in MODES if m != "hybrid"]):
            latencies = []
            for _ in range(args.rounds):
                for query in asked:
                    begun = time.perf_counter()
                    search(index, query, 10, mode=mode)
                    latencies.append((time.perf_counter() - begun) * 1000)
            result[mode] = {"p50_ms": round(percentile(latencies, 0.5), 2),
                            "p95_ms": round(percentile(latencies, 0.95), 2),
                            "p99_ms": round(percentile(latencies, 0.99), 2),
                            "mean_ms": round(float(np.mean(latencies)), 2), "searches": len(latencies)}
            progress(f"{mode}: p50 {result[mode]['p50_ms']} ms, p95 {result[mode]['p95_ms']} ms")
    finally:
        index.close()
    output = {
        "benchmark": "query",
        "index": {"chunks": chunk_count, "vectors": vector_count, "path": str(target),
                  "build_or_load_seconds": round(build_seconds, 1)},
        "k": 10,
        "goal_ms": {"p50": 30, "p95": 80},
        "latency": result,
        # The process's peak: the searches' own when the bench index was cached, else the build's.
        "peak_rss_mib": peak_rss_mib(),
        "index_built_this_run": not cached,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
