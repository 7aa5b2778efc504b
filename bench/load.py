"""Load benchmark: questions per minute and time to first passage for 1, 4 and 8 concurrent askers, while the
page's watcher indexes a batch of new files, beside the same with indexing paused.

Everything is the product's own: the page's service (`ui.service.ArchivistService`) over a real index (SQLite
catalog, embedded Chroma, the default embedding model), its watcher indexing a folder, and `service.ask` —
retrieval, the prompt, the LLM call and the sentence-by-sentence check of the answer. The LLM is the Ollama
stand-in from the tests (a real HTTP server speaking Ollama's protocol, answering at once), so the numbers are
Archivist's own cost per question, not the model's.

For each number of askers, two runs on the same library (a base of `--base` files, indexed first):
  - `indexing`: a batch of `--files` new files is moved into the watched folder, and the askers start as the
    watcher starts on it;
  - `paused`: indexing is paused, another batch is moved in (it waits), and the askers run; then indexing
    resumes and the benchmark waits until the batch is in before the next run.
Each asker asks `--questions` questions about the base files, one after another. Reported per run: questions
per minute (all askers together), time to first passage (p50/p95: from asking until the passages are found,
what the page shows first), time to the whole answer (p50/p95), errors, and the share of the run during which
the watcher was indexing. The `paused` run is the baseline the `indexing` run is compared with.

    .venv/bin/python bench/load.py [--askers 1,4,8] [--files 300] [--base 200] [--questions 4]

Prints one JSON document on stdout; progress on stderr. Never fails on a number: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script

from cpu import cpu_facts  # noqa: E402  (bench/cpu.py, beside this file)

from evaluation.metrics import percentile  # noqa: E402
from rag import offline  # noqa: E402,F401  (before anything heavy)
from rag.answer.ask import Finished, PassagesFound  # noqa: E402
from rag.factory import make_chat, open_default_index  # noqa: E402
from rag.index.lock import WriterLock  # noqa: E402
from rag.settings import load_settings  # noqa: E402
from tests.ollama_standin import OllamaStandIn  # noqa: E402
from tests.synthetic_library import SyntheticDocument, write_library  # noqa: E402
from ui.service import ArchivistService  # noqa: E402


def progress(message: str) -> None:
    print(f"[bench-load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_until_idle(service: ArchivistService, timeout_s: float = 1800.0) -> None:
    """Until the watcher has nothing in hand and nothing waiting."""
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        current = service.progress()
        busy = service.status().pending > 0 or (current is not None and current.state == "indexing")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2.0:  # a moved-in folder's events arrive after a quiet spell
            return
        time.sleep(0.2)
    raise TimeoutError("indexing did not finish")


def move_in(batch: Path, root: Path) -> None:
    """Move a finished folder into the watched one in one step, as a person drags a folder in."""
    os.replace(batch, root / batch.name)


class Run:
    """One run: `askers` threads, each asking its questions one after another, timed."""

    def __init__(self, service: ArchivistService, askers: int, questions: list[str]) -> None:
        self.service = service
        self.askers = askers
        self.questions = questions
        self.first_passage_s: list[float] = []
        self.answer_s: list[float] = []
        self.errors: list[str] = []
        self.indexing_samples: list[bool] = []
        self._lock = threading.Lock()
        self._done = threading.Event()

    def _ask(self, number: int) -> None:
        for offset in range(len(self.questions) // self.askers):
            question = self.questions[number + offset * self.askers]
            started = time.perf_counter()
            try:
                for event in self.service.ask(question, effort="low"):
                    if isinstance(event, PassagesFound):
                        with self._lock:
                            self.first_passage_s.append(time.perf_counter() - started)
                    elif isinstance(event, Finished):
                        with self._lock:
                            self.answer_s.append(time.perf_counter() - started)
            except Exception as error:  # measured, not raised: the run goes on
                with self._lock:
                    self.errors.append(f"{type(error).__name__}: {error}")

    def _watch(self) -> None:
        while not self._done.wait(0.2):
            current = self.service.progress()
            self.indexing_samples.append(current is not None and current.state == "indexing")

    def go(self) -> dict[str, Any]:
        monitor = threading.Thread(target=self._watch, daemon=True)
        monitor.start()
        threads = [threading.Thread(target=self._ask, args=(n,)) for n in range(self.askers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        self._done.set()
        monitor.join()
        return {
            "askers": self.askers,
            "questions": len(self.answer_s),
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
            "wall_s": round(wall, 2),
            "questions_per_minute": round(60 * len(self.answer_s) / wall, 1) if wall else 0.0,
            "first_passage_ms": {"p50": round(1000 * percentile(self.first_passage_s, 0.5)),
                                 "p95": round(1000 * percentile(self.first_passage_s, 0.95))},
            "answer_ms": {"p50": round(1000 * percentile(self.answer_s, 0.5)),
                          "p95": round(1000 * percentile(self.answer_s, 0.95))},
            "indexing_share": round(sum(self.indexing_samples) / len(self.indexing_samples), 2)
            if self.indexing_samples else 0.0,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--askers", default="1,4,8", help="concurrent askers per run, comma-separated (1,4,8)")
    parser.add_argument("--files", type=int, default=300, help="new files indexed during each run (300)")
    parser.add_argument("--base", type=int, default=200, help="files indexed before the runs (200)")
    parser.add_argument("--questions", type=int, default=4, help="questions per asker per run (4)")
    args = parser.parse_args(argv)
    levels = [int(part) for part in args.askers.split(",") if part.strip()]

    work = Path(tempfile.mkdtemp(prefix="archivist-bench-load-"))
    result: dict[str, Any] = {"machine": cpu_facts(), "settings": vars(args), "runs": []}
    try:
        with OllamaStandIn() as standin:
            os.environ["OLLAMA_HOST"] = standin.url
            settings = load_settings(data_dir=work / "data")
            root = work / "library"
            base: list[SyntheticDocument] = write_library(root / "base", args.base)
            index = open_default_index(settings)
            service = ArchivistService(settings, index, make_chat(settings), [root],
                                       lock=WriterLock(settings.data_dir).acquire())
            started = time.perf_counter()
            service.start()
            service.wait_until_ready()
            wait_until_idle(service)
            result["base_index_s"] = round(time.perf_counter() - started, 1)
            progress(f"base library of {args.base} files indexed in {result['base_index_s']} s")
            next_file = args.base
            try:
                for askers in levels:
                    questions = [base[(askers * 7 + i) % len(base)].question
                                 for i in range(askers * args.questions)]
                    for condition in ("indexing", "paused"):
                        batch = work / f"batch-{askers}-{condition}"
                        write_library(batch, args.files, start=next_file)
                        next_file += args.files
                        if condition == "paused":
                            service.pause_indexing()
                        move_in(batch, root)
                        if condition == "indexing":
                            deadline = time.monotonic() + 30
                            while time.monotonic() < deadline and not (
                                (current := service.progress()) is not None and current.state == "indexing"
                            ):
                                time.sleep(0.05)
                        measured = Run(service, askers, questions).go()
                        measured["condition"] = condition
                        result["runs"].append(measured)
                        progress(f"{askers} askers, {condition}: {measured['questions_per_minute']} questions/min, "
                                 f"first passage p50 {measured['first_passage_ms']['p50']} ms "
                                 f"p95 {measured['first_passage_ms']['p95']} ms, "
                                 f"indexing {measured['indexing_share']:.0%} of the run")
                        if condition == "paused":
                            service.resume_indexing()
                        wait_until_idle(service)
            finally:
                service.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    by_key = {(run["askers"], run["condition"]): run for run in result["runs"]}
    result["indexing_vs_paused"] = {
        str(askers): {
            "questions_per_minute_ratio": round(by_key[(askers, "indexing")]["questions_per_minute"]
                                                / max(by_key[(askers, "paused")]["questions_per_minute"], 1e-9), 2),
            "first_passage_p50_ratio": round(by_key[(askers, "indexing")]["first_passage_ms"]["p50"]
                                             / max(by_key[(askers, "paused")]["first_passage_ms"]["p50"], 1), 2),
        }
        for askers in levels if (askers, "indexing") in by_key and (askers, "paused") in by_key
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
