"""FinanceBench through the product's own code paths: the filings (PDFs) in one library, as a user would have
them, ingested by the normal pipeline; every question goes through `rag.search.retrieve.search`.

Per question, over the pages of the top-k chunks: `page_hit@k` is 1 when any evidence page is among them (a hit
rate; it was called `page_recall@k` before), `page_recall@k` the share of the question's evidence pages among
them; `doc_hit@5` whether the filing asked about is among the top five chunks' files.

With `context`, every question also goes through quick mode's own packing (`rag.answer.packing`, the prompt
`ask` would send at these settings, without calling any model): `evidence_in_context` is the share of questions
with an evidence page among the pages of the passages given to the model (a merged passage covers all its pages),
`evidence_in_top_sources` the same for the top `sources` chunks alone (the prompt before packing by budget), and
`prompt_tokens` the whole rendered prompt's size in gpt-oss tokens (exact when quicktok is installed).

FinanceBench's file names (`BESTBUY_2023_10K`) are the ones the named-file search was designed while looking at,
so its figures on them are in-sample. `rename=True` measures the same questions on the same filings renamed
to other plausible conventions (`evaluation.rename`): the library a person renaming those files would have.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

from evaluation.cache import (
    CachedIndexEvaluation,
    ProgressFactory,
    evaluation_folder,
    evaluation_index,
    index_key,
    sink,
)
from evaluation.metrics import hit_at, mean, percentile, set_recall_at
from evaluation.record import run_record
from evaluation.rename import RENAME_VERSION, rename_library
from rag.answer.ask import is_relevant, reply_room
from rag.answer.packing import gather, nearest, pack_prompt
from rag.errors import ConfigError
from rag.index.index import FileFacts
from rag.index.lock import WriterLock
from rag.llm.tokens import count_rendered, exact
from rag.records import Hit
from rag.search.retrieve import Mode, RetrievalSettings, search
from rag.settings import Settings

K = (5, 10)


class FinanceBenchEvaluation(CachedIndexEvaluation):
    """The FinanceBench PDFs ingested once into one (cached) library index; `score` asks every question whose
    PDF is present through the normal search path. With `rename`, the library holds the same PDFs under
    other names (see the module's docstring)."""

    def __init__(self, folder: Path, settings: Settings, data_dir: Path | None = None,
                 progress: ProgressFactory | None = None, rename: bool = False) -> None:
        self.pdfs = folder / "pdfs"
        questions_file = folder / "questions.jsonl"
        if not self.pdfs.is_dir() or not questions_file.is_file():
            raise ConfigError(f"Not a FinanceBench folder: expected {self.pdfs} and {questions_file}.")
        super().__init__(settings, progress)
        self.rename = rename
        self.present = {path.stem: path for path in self.pdfs.glob("*.pdf")}
        questions = [json.loads(line) for line in questions_file.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        self.questions = [q for q in questions if q["doc_name"] in self.present]
        # The library under FinanceBench's names: the index every run without `rename` uses.
        self.library_dir = data_dir or evaluation_folder(
            "financebench", self.pdfs.resolve(), sorted(self.present), *index_key(settings),
        )
        # file stem in the index -> FinanceBench's doc_name
        self.names = {stem: stem for stem in self.present}
        if rename:
            new_names = rename_library(self.present, _companies(folder / "documents.jsonl"))
            self.names = {new: old for old, new in new_names.items()}
            self.data_dir = data_dir.with_name(data_dir.name + "-renamed") if data_dir else evaluation_folder(
                "financebench-renamed", self.pdfs.resolve(), sorted(self.present), RENAME_VERSION,
                *index_key(settings),
            )
            self.index_dir = self.data_dir / "index"
        else:
            self.data_dir = self.index_dir = self.library_dir

    def _documents(self) -> list[Path]:
        if not self.rename:
            return [self.pdfs]
        folder = self.data_dir / "documents"
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {f"{new}.pdf": self.present[old] for new, old in self.names.items()}
        for stale in set(os.listdir(folder)) - set(wanted):
            (folder / stale).unlink()
        for name, source in wanted.items():
            _place(source, folder / name)
        if not (self.index_dir / "catalog.sqlite3").exists():
            self._start_from_library(folder)
        return [folder]

    def _start_from_library(self, folder: Path) -> None:
        """When the library under FinanceBench's names is indexed (and the vectors are in its own folder, not
        on a Chroma server), start the renamed library from a copy of that index and move each document to
        its new name, as ingest does when a person renames a file: nothing is parsed or embedded again, and
        what search sees (paths, file-name words, chunks, vectors) is what indexing the renamed files from
        scratch would give. Otherwise the renamed files are indexed from scratch."""
        catalog = self.library_dir / "catalog.sqlite3"
        if self.settings.chroma_url or not catalog.exists():
            return
        by_old = {old: folder / f"{new}.pdf" for new, old in self.names.items()}
        staging = self.index_dir.with_name(self.index_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with WriterLock(self.library_dir):
            with closing(sqlite3.connect(catalog)) as source, closing(sqlite3.connect(staging / catalog.name)) as copy:
                source.backup(copy)
            if (self.library_dir / "chroma").is_dir():
                shutil.copytree(self.library_dir / "chroma", staging / "chroma")
        with evaluation_index(staging, self.settings) as (index, _):
            for document in index.catalog.documents():
                target = by_old.get(Path(document.path).stem)
                if target is None or document.status != "indexed" or document.content_hash is None:
                    index.remove_document(document.path)  # indexed again, or not at all, by the ingest that follows
                    continue
                stat = target.stat()
                index.move_document(document.path, FileFacts(str(target), document.content_hash, stat.st_size,
                                                             stat.st_mtime_ns))
        staging.rename(self.index_dir)

    def score(self, mode: Mode = "hybrid", tuning: RetrievalSettings | None = None) -> dict[str, object]:
        index = self._open()
        tuning = tuning or self.settings.retrieval
        scores: dict[str, list[float]] = {"doc_hit@5": []}
        for k in K:
            scores[f"page_hit@{k}"] = []
            scores[f"page_recall@{k}"] = []
        latencies = []
        bar = sink(self.progress, len(self.questions), "Searching")
        for question in self.questions:
            evidence = {(e["doc_name"], int(e["evidence_page_num"]) + 1) for e in question["evidence"]}
            started = time.perf_counter()
            hits = search(index, question["question"], max(K), mode=mode, tuning=tuning)
            latencies.append((time.perf_counter() - started) * 1000)
            names = [self.names.get(Path(hit.path).stem, "") for hit in hits]
            pages = [{(name, page) for page in range(hit.page_start, hit.page_end + 1)}
                     for name, hit in zip(names, hits, strict=True)]
            scores["doc_hit@5"].append(float(question["doc_name"] in names[:5]))
            for k in K:
                scores[f"page_hit@{k}"].append(hit_at(pages, evidence, k))
                scores[f"page_recall@{k}"].append(set_recall_at(pages, evidence, k))
            bar.advance()
        bar.close()
        page_count = sum(d.page_count for d in index.catalog.documents() if d.status == "indexed")
        result: dict[str, object] = {"questions": len(self.questions)}
        result.update({name: round(mean(values), 4) for name, values in scores.items()})
        result.update(
            latency_ms={"p50": round(percentile(latencies, 0.5), 2), "p95": round(percentile(latencies, 0.95), 2)},
            mode=mode, file_names="renamed" if self.rename else "financebench", documents=len(self.present),
            pages=page_count, chunks=index.catalog.chunk_count(), **self.index_facts(),
        )
        if self.rename:
            result["renamed"] = {old: f"{new}.pdf" for new, old in sorted(self.names.items(), key=lambda n: n[1])}
        result.update(run_record(self.settings, mode=mode, retrieval=tuning))
        return result

    def context(self) -> dict[str, object]:
        """Quick mode's prompt for every question, as `ask` builds it at these settings (see the module's
        docstring); a question `ask` would refuse as not in the documents counts as evidence not given."""
        index = self._open()
        settings = self.settings
        given: list[float] = []
        before: list[float] = []
        tokens: list[float] = []
        passages: list[float] = []
        refused = 0
        bar = sink(self.progress, len(self.questions), "Packing")
        for question in self.questions:
            evidence = {(e["doc_name"], int(e["evidence_page_num"]) + 1) for e in question["evidence"]}
            text = question["question"]
            hits = gather(index, text, settings)
            before.append(float(bool(self._pages(hits[: settings.sources]) & evidence)))
            if not is_relevant(nearest(hits, settings), settings.min_relevance):
                refused += 1
                given.append(0.0)
                bar.advance()
                continue
            prompt = pack_prompt(text, text, hits, index, settings, reply_room(settings), (), settings.effort,
                                 date(2026, 1, 1))
            given.append(float(bool(self._pages(prompt.passages) & evidence)))
            tokens.append(count_rendered(prompt.text))
            passages.append(len(prompt.passages))
            bar.advance()
        bar.close()
        return {
            "evidence_in_context": round(mean(given), 4),
            "evidence_in_top_sources": round(mean(before), 4),
            "prompt_tokens": {"mean": round(mean(tokens), 1), "median": round(percentile(tokens, 0.5), 1),
                              "max": max(tokens, default=0.0), "exact": exact()},
            "passages_in_context": {"mean": round(mean(passages), 2), "max": max(passages, default=0.0)},
            "refused_as_not_relevant": refused,
            "context_settings": {"share": settings.context.share, "candidates": settings.context.candidates,
                                 "merge_neighbours": settings.context.merge_neighbours,
                                 "num_ctx": settings.num_ctx, "sources": settings.sources},
        }

    def _pages(self, hits: list[Hit]) -> set[tuple[str, int]]:
        """(FinanceBench doc_name, page) of every page the passages cover."""
        return {(self.names.get(Path(hit.path).stem, ""), page)
                for hit in hits for page in range(hit.page_start, hit.page_end + 1)}


def _companies(documents_file: Path) -> dict[str, str]:
    """doc_name -> the company's name as FinanceBench spells it (documents.jsonl), when that file is there."""
    if not documents_file.is_file():
        return {}
    return {str(record["doc_name"]): str(record["company"]) for record in _records(documents_file)}


def _records(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _place(source: Path, target: Path) -> None:
    """`target` holding `source`'s bytes: a hard link where the file system allows (no copy of 100 MB of PDFs),
    else a copy keeping the time stamps. Left alone when already there, so its index entry stays unchanged."""
    if target.exists() and target.stat().st_size == source.stat().st_size:
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def eval_financebench(
    folder: Path,
    settings: Settings,
    mode: Mode = "hybrid",
    tuning: RetrievalSettings | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory | None = None,
    rename: bool = False,
    context: bool = False,
) -> dict[str, object]:
    with FinanceBenchEvaluation(folder, settings, data_dir, progress, rename) as evaluation:
        result = evaluation.score(mode, tuning)
        if context:
            result.update(evaluation.context())
        return result
