"""Large-file benchmark: one big text file through `Ingester`, with the catalog's size taken apart by table.

Builds a text file of about --mb megabytes from SciFact's abstracts (real prose, one paragraph each, repeated
when the corpus runs out), ingests it in a child process (so its peak RSS is the run's own), and reports
wall time, peak RSS, chunks, the catalog's bytes (file + WAL) and each table's and index's share (SQLite's
dbstat), bytes per chunk and per MB of text, and the Chroma folder's size.

    .venv/bin/python bench/large_file.py [--mb 5] [--embedder real|fast] [--keep DIR]

`--embedder fast` keeps the real model's tokenizer (so chunks are the real size) but makes 384-dimension
vectors by hashing words (the tests' HashingEmbedder, from tests/fakes.py): the catalog and the memory are
measured in seconds, not minutes; the time is then not the model's. Prints one JSON document on stdout.
Never fails on a number: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def shared_data_dir() -> Path:
    return Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")


def build_text(target: Path, megabytes: float) -> int:
    """A text file of real prose of about `megabytes` MB; returns its size in bytes."""
    wanted = int(megabytes * 1_000_000)
    paragraphs = []
    with open(shared_data_dir() / "scifact" / "corpus.jsonl", encoding="utf-8") as corpus:
        for line in corpus:
            record = json.loads(line)
            if record.get("text"):
                paragraphs.append(f"{record['title']}\n\n{record['text']}\n\n")
    written, copy = 0, 0
    with open(target, "w", encoding="utf-8") as out:
        while written < wanted:
            for paragraph in paragraphs:
                # a marker per copy, so a repeated abstract is new text (not an embedding cache hit)
                text = paragraph if copy == 0 else f"(copy {copy}) {paragraph}"
                out.write(text)
                written += len(text.encode("utf-8"))
                if written >= wanted:
                    break
            copy += 1
    return target.stat().st_size


def catalog_breakdown(path: Path) -> dict[str, object]:
    db = sqlite3.connect(path)
    tables = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall())
    chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    text = db.execute("SELECT coalesce(sum(length(CAST(text AS BLOB))), 0) FROM chunks").fetchone()[0]
    cache = db.execute("SELECT count(*) FROM embedding_cache").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    # The FTS5 table's shadow tables are grouped under one name.
    grouped: dict[str, int] = {}
    for name, size in tables.items():
        key = "chunks_fts (all shadow tables)" if name.startswith("chunks_fts") else name
        grouped[key] = grouped.get(key, 0) + int(size)
    return {"chunks": chunks, "chunk_text_bytes": text, "embedding_cache_rows": cache, "freelist_bytes": free,
            "by_table": dict(sorted(grouped.items(), key=lambda item: -item[1])),
            "bytes_per_chunk_by_table": {name: round(size / max(chunks, 1)) for name, size in
                                         sorted(grouped.items(), key=lambda item: -item[1])}}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def child(file: Path, data_dir: Path, embedder_kind: str) -> None:
    """Ingest one file into `data_dir` (run in its own process)."""
    from ingest.pipeline import Ingester
    from rag.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    if embedder_kind == "fast":
        from rag.index.embedder import packaged_model_dir
        from rag.index.index import open_index
        from tests.fakes import HashingEmbedder

        class FastEmbedder(HashingEmbedder):
            def __init__(self) -> None:
                super().__init__(dimension=384)
                from tokenizers import Tokenizer

                self._counter = Tokenizer.from_file(str(packaged_model_dir() / "tokenizer.json"))
                self._counter.no_truncation()
                self._counter.no_padding()

            def embed_batch(self, texts: Sequence[str]) -> object:  # type: ignore[override]
                vectors = super().embed_batch(texts)
                self.embedded_texts.clear()  # the base class remembers every text, for tests
                return vectors

            def count_tokens(self, text: str) -> int:
                return len(self._counter.encode(text, add_special_tokens=False).ids)

        index = open_index(data_dir, FastEmbedder(), model_name="hashing-384")
    else:
        from rag.factory import open_default_index

        index = open_default_index(settings)
    report = Ingester(index, settings).ingest_paths([file])
    index.close()
    print(json.dumps(report.to_json()), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--embedder", choices=["real", "fast"], default="fast")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.embedder)
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="archivist-large-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        file = work / "large.txt"
        size = build_text(file, args.mb)
        data_dir = work / "data"
        shutil.rmtree(data_dir, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--embedder", args.embedder, "--child", str(file), str(data_dir)],
                       check=True, env=env)
        seconds = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        catalog = data_dir / "catalog.sqlite3"
        wal = catalog.with_name(catalog.name + "-wal")
        catalog_bytes = catalog.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        result = {
            "file_mb": round(size / 1e6, 2), "embedder": args.embedder, "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak_kib / 1024), "catalog_bytes": catalog_bytes,
            "wal_bytes": wal.stat().st_size if wal.exists() else 0,
            "catalog_bytes_per_mb_of_text": round(catalog_bytes / (size / 1e6)),
            "catalog_to_file": round(catalog_bytes / size, 2),
            "chroma_bytes": folder_bytes(data_dir / "chroma"),
            **catalog_breakdown(catalog),
        }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
