"""A benchmark's documents ingested once, through the normal ingest path, into an index kept in Archivist's
cache folder and keyed by everything that shapes it (the corpus, the chunking settings, the model), so a
second run (to try other retrieval settings) only searches."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, Self

import platformdirs

from ingest.indexing import ingest_and_reconcile, writable_index
from ingest.pipeline import FileResult, Ingester, Outcome
from rag.index.index import Index
from rag.settings import ChunkingSettings, Settings

# Part of the evaluation indexes' cache key: bump when parsing or chunking changes what gets indexed.
PARSE_VERSION = 3

ProgressFactory = Callable[[int, str], "ProgressSink"]


class ProgressSink(Protocol):
    """Where long evaluation work reports progress; the CLI passes a progress bar."""

    def advance(self, result: FileResult | None = None) -> None: ...

    def close(self) -> None: ...


class Silent:
    def advance(self, result: FileResult | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def sink(progress: ProgressFactory | None, total: int, description: str) -> ProgressSink:
    return progress(total, description) if progress else Silent()


def evaluation_folder(name: str, *parts: object) -> Path:
    """A cache folder for one benchmark index, keyed by everything that shapes the index."""
    key = hashlib.sha256(json.dumps([str(part) for part in parts]).encode()).hexdigest()[:12]
    return Path(platformdirs.user_cache_dir("archivist", appauthor=False)) / "eval" / f"{name}-{key}"


def index_key(settings: Settings) -> list[object]:
    """The settings that shape an evaluation index, for `evaluation_folder`. The embedding backend, when not the
    default, keys its own index (indexes made before this key existed were all int8, and keep their names)."""
    backend = [settings.embedding_backend] if settings.embedding_backend != "int8" else []
    chunking = settings.chunking
    # anchor_one_in joined the key later, only when not its default: earlier indexes keep their names.
    anchor = [chunking.anchor_one_in] if chunking.anchor_one_in != ChunkingSettings().anchor_one_in else []
    return [chunking.tokens, chunking.overlap_tokens, chunking.min_fill,
            settings.embedding_model_dir, PARSE_VERSION, *backend, *anchor]


@contextmanager
def evaluation_index(data_dir: Path, settings: Settings) -> Iterator[tuple[Index, Settings]]:
    eval_settings = settings.model_copy(update={"data_dir": data_dir})
    with writable_index(eval_settings) as index:
        yield index, eval_settings


def ingest_into(
    index: Index, settings: Settings, paths: list[Path], progress: ProgressFactory | None
) -> dict[str, object]:
    """Ingest `paths` as `archivist ingest` would (unchanged files are not read again), then reconcile. Returns
    what the run did (`archivist ingest --json`'s counts and the seconds), so a result shows whether its index
    was built or reused."""
    ingester = Ingester(index, settings)
    files = ingester.plan(paths).files
    bar = sink(progress, len(files), "Indexing")
    started = time.perf_counter()
    try:
        report = ingest_and_reconcile(ingester, paths, on_file=bar.advance)
    finally:
        bar.close()
    counts = report.to_json()
    return {"seconds": round(time.perf_counter() - started, 1), "indexed": counts["indexed"],
            "unchanged": counts["unchanged"], "removed": counts["removed"],
            "failed": len(report.of(Outcome.FAILED)), "skipped": len(report.of(Outcome.SKIPPED)),
            "embedded_texts": counts["embedded_texts"]}


class CachedIndexEvaluation:
    """A benchmark's documents ingested once into a cached index (`index_dir`), open while in the `with`
    block; subclasses name the documents and score questions against `self.index`."""

    index_dir: Path  # the index itself
    data_dir: Path  # the benchmark's cache folder (the index, and any files made for it)

    def __init__(self, settings: Settings, progress: ProgressFactory | None) -> None:
        self.settings = settings
        self.progress = progress
        self.ingest: dict[str, object] = {}
        self._opened: Any = None
        self.index: Index | None = None

    def _documents(self) -> list[Path]:
        """The files and folders to ingest (made ready on disk first where needed)."""
        raise NotImplementedError

    def _open(self) -> Index:
        """The open index, for scoring; a ConfigError (not an assert) when used outside its `with` block."""
        if self.index is None:
            from rag.errors import ConfigError

            raise ConfigError(f"{type(self).__name__} scores only inside its `with` block (the index is closed).")
        return self.index

    def opened_index(self) -> Index:
        """The index, open inside the `with` block (for evaluations that run more than search over it)."""
        return self._open()

    def __enter__(self) -> Self:
        paths = self._documents()
        self._opened = evaluation_index(self.index_dir, self.settings)
        self.index, eval_settings = self._opened.__enter__()
        try:
            self.ingest = ingest_into(self.index, eval_settings, paths, self.progress)
        except BaseException:
            self._opened.__exit__(*sys.exc_info())
            raise
        return self

    def index_facts(self) -> dict[str, object]:
        """Where the index is and what this run's ingest did (`ingest_seconds` kept from earlier results)."""
        return {"ingest_seconds": self.ingest.get("seconds", 0.0), "ingest": self.ingest,
                "index": str(self.data_dir)}

    def __exit__(self, *exc: Any) -> None:
        if self._opened is not None:
            self._opened.__exit__(*exc)
        self._opened = self.index = None
