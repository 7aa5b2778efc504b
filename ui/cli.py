"""The `archivist` command line: a thin face over rag and ingest. Errors become one friendly line here."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag import offline  # noqa: F401  (before anything heavy)
from rag.errors import ArchivistError
from rag.settings import Settings, load_settings
from ui.terminal import clean, clean_line, json_text

if TYPE_CHECKING:
    from rag.records import Filters

logger = logging.getLogger("archivist")

DESCRIPTION = """\
Archivist: ask questions about your own documents and get answers with citations, all on this machine.

Point it at folders of PDF, text, Markdown, HTML and Word files; it keeps a search index of them, and
answers questions with gpt-oss running in your local Ollama. Without Ollama it still finds passages.

  archivist ingest ~/Documents          index a folder once
  archivist search "quarterly revenue"  find passages
  archivist ask "What was revenue in 2022?"
  archivist ui ~/Documents              the browser page, watching the folder (http://127.0.0.1:8501)
"""

EPILOG = """\
The data folder is --data-dir, else $ARCHIVIST_DATA_DIR, else your user data folder. Ollama is reached at
$OLLAMA_HOST (default http://127.0.0.1:11434) and the model is $ARCHIVIST_MODEL (default gpt-oss:20b).
"""
JSON_EPILOG = "With --json, standard output carries exactly one JSON document; progress goes to standard error.\n"


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="where the index lives (see below)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens to standard error")


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", type=Path, metavar="DIR", help="only documents under this folder")
    parser.add_argument(
        "--type", dest="kinds", action="append", choices=["pdf", "text", "markdown", "html", "docx"],
        metavar="TYPE", help="only this file type (pdf, text, markdown, html, docx); repeat for several",
    )
    parser.add_argument("--name", metavar="GLOB", help="only files whose name matches, e.g. '*2022*'")


def _filters(args: argparse.Namespace) -> Filters:
    from rag.records import Filters

    folder = str(Path(os.path.abspath(args.folder))) if args.folder else None
    return Filters(folder=folder, kinds=tuple(args.kinds or ()), name_glob=args.name)


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    parser.epilog = (parser.epilog or EPILOG) + JSON_EPILOG


def _non_negative(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archivist", description=DESCRIPTION, epilog=EPILOG + JSON_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _data_dir_option(sub)
        return sub

    ingest = command("ingest", "Index files and folders once, then exit (failures are listed, not fatal).")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders to index")
    _json_option(ingest)

    search = command("search", "Find the passages that best match a query.")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("--k", type=_positive, default=None, metavar="N", help="how many passages (default 10)")
    search.add_argument(
        "--mode", choices=["dense", "lexical", "hybrid"], default="hybrid",
        help="meaning (dense), exact words (lexical, BM25) or both fused (hybrid, the default)",
    )
    _filter_options(search)
    _json_option(search)

    ask = command(
        "ask", "Answer a question from your documents, with citations (needs Ollama, or the OpenAI-compatible "
        "server named by ARCHIVIST_LLM=openai and ARCHIVIST_OPENAI_BASE_URL).",
    )
    ask.add_argument("question", metavar="QUESTION")
    ask.add_argument("--effort", choices=["low", "medium", "high"], help="gpt-oss reasoning effort (default medium)")
    ask.add_argument(
        "--mode", choices=["quick", "research"],
        help="research (the default when the model takes tools): the model may search your library again, open "
        "pages, find phrases and calculate before it answers; quick: one answer from the passages found. "
        "ARCHIVIST_RESEARCH__MODE sets the default.",
    )
    ask.add_argument(
        "--steps", type=_non_negative, metavar="N",
        help="most tool calls in research mode (default 8, ARCHIVIST_RESEARCH__MAX_STEPS); 0 answers at once",
    )
    _filter_options(ask)
    _json_option(ask)

    status = command("status", "Show what is indexed: documents by status, chunks, failures with reasons.")
    _json_option(status)

    doctor = command(
        "doctor", "Check this machine: Python and packages, the embedding model, the data folder, the index "
        "(catalog against vectors), the LLM server, the model and its context length, refused connections; "
        "with the fix for each problem. Exits 1 when something is broken.",
    )
    _json_option(doctor)

    evaluate = commands.add_parser(
        "eval", help="Measure retrieval or answer checking on a public benchmark (BEIR, FinanceBench, SciFact).",
        description="Measure retrieval quality, or how well answers' quotes are chosen, through the normal ingest, "
        "search and answer-checking paths. Each result records the settings, the model and the machine.",
    )
    benchmarks = evaluate.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    beir = benchmarks.add_parser(
        "beir", help="A BEIR-format folder (corpus.jsonl, SPLIT/queries.jsonl, SPLIT/qrels.tsv), e.g. SciFact.",
        description="Index a BEIR corpus into a throw-away index and print nDCG@10, recall@10/100, MRR@10.",
    )
    beir.add_argument("folder", type=Path, metavar="DIR")
    beir.add_argument("--split", default="test", help="which queries and judgements (default test)")
    beir.add_argument("--limit", type=_positive, metavar="N", help="only the first N queries (a quick look)")
    financebench = benchmarks.add_parser(
        "financebench", help="FinanceBench: 10-K PDFs (DIR/pdfs) and questions with evidence pages.",
        description="Index all PDFs as one library, then ask every question: page_hit@k is the share of questions "
        "with an evidence page among the top k passages' pages, page_recall@k the share of evidence pages found.",
    )
    financebench.add_argument("folder", type=Path, metavar="DIR")
    financebench.add_argument(
        "--rename", action="store_true",
        help="the same filings renamed to other plausible conventions (e.g. 'Best Buy Co - Annual Report "
        "FY2023.pdf'): FinanceBench's own file names are the ones the named-file search was designed on",
    )
    financebench.add_argument(
        "--context", action="store_true",
        help="also build quick mode's prompt for every question (no model is called): evidence_in_context, the "
        "share of questions whose evidence page is among the passages given to the model, and the prompt's tokens",
    )
    for sub in (beir, financebench):
        _data_dir_option(sub)
        sub.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
        _json_option(sub)
    answers = benchmarks.add_parser(
        "answers", help="Ask every FinanceBench question through the configured LLM and score the answers.",
        description="Run each question through `ask` (quick or research mode) against the configured LLM: numeric "
        "gold answers count as correct within 1% (relative); the others are listed for reading. Prints the "
        "share correct, refusals, tool calls per question, the share of supported sentences and the time per "
        "answer. With gpt-oss this compares quick and research mode; with a small model it checks the plumbing.",
    )
    answers.add_argument("dataset", choices=["financebench"], help="the benchmark (FinanceBench)")
    answers.add_argument("folder", type=Path, metavar="DIR", help="FinanceBench (DIR/pdfs, DIR/questions.jsonl)")
    answers.add_argument("--mode", choices=["quick", "research"], default="research",
                         help="how each question is answered (default research)")
    answers.add_argument("--limit", type=_positive, metavar="N", help="only the first N questions")
    answers.add_argument("--rename", action="store_true", help="the renamed library (see `eval financebench`)")
    _data_dir_option(answers)
    _json_option(answers)
    grounding = benchmarks.add_parser(
        "grounding", help="SciFact claims: is the quote picked from the cited abstract a gold rationale sentence?",
        description="For each claim and each abstract supporting it, pick the supporting sentence as an answer's "
        "citation would, and print how often it is a gold rationale sentence (quote accuracy @1 and @3).",
    )
    grounding.add_argument("folder", type=Path, metavar="DIR", help="SciFact (corpus.jsonl, SPLIT/claims.jsonl)")
    grounding.add_argument("--split", choices=["train", "test"], default="test", help="which claims (default test)")
    grounding.add_argument("--limit", type=_positive, metavar="N", help="only the first N claim-evidence pairs")
    _data_dir_option(grounding)
    _json_option(grounding)

    command("pause", "Pause indexing by the process that owns the index (it finishes the file in hand).")
    command("resume", "Resume paused indexing.")

    watch = command("watch", "Index folders, then keep the index in step with them until Ctrl-C.")
    watch.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="folders (or files) to watch")

    ui = command("ui", "Serve the browser page (and watch PATHs while it runs).")
    ui.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="folders to index and watch")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("query", "question"):
        if isinstance(getattr(args, name, None), str) and not getattr(args, name).strip():
            parser.error(f"the {name} is empty: say what to look for")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings(data_dir=args.data_dir)
        handler = {
            "ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "status": cmd_status,
            "watch": cmd_watch, "ui": cmd_ui, "pause": cmd_pause, "resume": cmd_resume, "eval": cmd_eval,
            "doctor": cmd_doctor,
        }[args.command]
        return handler(args, settings)
    except ArchivistError as error:
        print(f"archivist: {clean(str(error))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`archivist status | head`): stop quietly, as a program killed by SIGPIPE
        # would. Standard output is pointed at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as error:
        # A file-system problem no check foresaw (permissions, a full disk): one line, not a traceback.
        logger.debug("file-system error", exc_info=True)
        where = f": {error.filename}" if error.filename is not None else ""
        print(f"archivist: {clean(error.strerror or str(error))}{clean(str(where))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("archivist: interrupted", file=sys.stderr)
        return 130


def _print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


# ----- commands -----
def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.control import IndexingControl
    from ingest.indexing import ingest_and_reconcile, writable_index
    from ingest.pipeline import Ingester, Outcome, absolute
    from ui.progress import FileProgress

    with writable_index(settings) as index:
        _low_priority()
        if IndexingControl(settings.data_dir).paused:
            print("Indexing is paused: waiting for `archivist resume`…", file=sys.stderr)
        # A path that is not there is a mistake to point out, unless it names something indexed: then
        # ingesting it is how its document leaves the index.
        not_found = [str(path) for path in args.paths if not os.path.lexists(path)
                     and not index.catalog.documents(under=str(absolute(path)))]
        paths = [path for path in args.paths if str(path) not in not_found]
        ingester = Ingester(index, settings)
        plan = ingester.plan(paths)
        with FileProgress(total=len(plan.files) + len(plan.unreadable), description="Indexing") as progress:
            ingester.on_passages = progress.passages  # a large file shows its passages as they are written
            report = ingest_and_reconcile(ingester, paths, on_file=progress.advance)
    summary = report.to_json()
    summary["not_found"] = not_found
    status = 1 if not_found else 0
    if args.json:
        _print_json(summary)
        return status
    problems = [(r.outcome.value, r.path, r.reason) for r in report.of(Outcome.FAILED, Outcome.SKIPPED)]
    print(
        f"{summary['indexed']} indexed, {summary['unchanged']} unchanged, {summary['removed']} removed, "
        f"{len(report.of(Outcome.FAILED))} failed, {len(report.of(Outcome.SKIPPED))} skipped."
    )
    for outcome, path, reason in problems:
        print(f"  {outcome}: {clean_line(path)}: {clean_line(reason or '')}")
    for path in not_found:
        print(f"archivist: no such file or folder: {clean_line(path)}", file=sys.stderr)
    return status


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from rag.factory import open_default_index
    from rag.search.retrieve import search

    index = open_default_index(settings)
    try:
        hits = search(index, args.query, args.k or settings.search_k, mode=args.mode, filters=_filters(args),
                      tuning=settings.retrieval)
    finally:
        index.close()
    if args.json:
        _print_json([hit.to_json() for hit in hits])
        return 0
    if not hits:
        print("No passages found. Is anything indexed? Try `archivist status`.")
    for hit in hits:
        print(f"[{hit.rank}] {clean_line(hit.path)} ({hit.pages_label}) score {hit.score:.3f}")
        print("    " + clean_line(_shorten(hit.text, 300)))
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.control import indexing_notice, read_progress
    from rag.answer.ask import AnswerDelta, AnswerRetracted, Finished, PassagesFound, ReasoningDelta, StepTaken, ask
    from rag.errors import LLMResponseError
    from rag.factory import make_chat, open_default_index

    if args.steps is not None:
        settings = settings.model_copy(update={"research": replace(settings.research, max_steps=args.steps)})
    chat = make_chat(settings)
    try:
        chat.check()  # fail in a moment, not after loading the embedding model
        index = open_default_index(settings)
    except BaseException:
        chat.close()
        raise
    try:
        answer = None
        thinking_shown = False
        events = ask(args.question, index, chat, settings, args.effort, filters=_filters(args), mode=args.mode)
        for event in events:
            if isinstance(event, PassagesFound) and not event.relevant and not args.json:
                print("(nothing relevant found; the model was not asked)", file=sys.stderr, flush=True)
            elif isinstance(event, ReasoningDelta) and not args.json and not thinking_shown:
                print("(thinking…)", file=sys.stderr, flush=True)
                thinking_shown = True
            elif isinstance(event, AnswerDelta) and not args.json:
                print(clean(event.text), end="", flush=True)
            elif isinstance(event, AnswerRetracted) and not args.json:
                print(file=sys.stderr, flush=True)  # what streamed was a preamble to the tool calls that follow
            elif isinstance(event, StepTaken) and not args.json:
                failed = " (failed)" if event.step.failed else ""
                print(f"({clean_line(event.step.summary)}{failed})", file=sys.stderr, flush=True)
            elif isinstance(event, Finished):
                answer = event.answer
    finally:
        index.close()
        chat.close()
    if answer is None:  # ask() ends every answer it gives with Finished: the stream broke off
        raise LLMResponseError("The answer ended before it was finished. Ask again.")
    # Another process (the page, `archivist watch`) may still be indexing: the answer may then change.
    notice = indexing_notice(read_progress(settings.data_dir))
    if notice is not None:
        answer.notices.insert(0, notice)
    if args.json:
        _print_json(answer.to_json())
        return 0
    print()
    if not answer.found_relevant:
        if answer.passages:
            print("\nThe nearest passages:")
        for hit in answer.passages:
            print(f"  {clean_line(hit.path)} ({hit.pages_label}): {clean_line(_shorten(hit.text, 160))}")
    if answer.citations:
        print("\nSources:")
        for citation in answer.citations:
            pages = f"p. {citation.page_start}" + (
                f"–{citation.page_end}" if citation.page_end != citation.page_start else ""
            )
            quote = clean_line(_shorten(citation.quote, 160))
            print(f"  [{citation.n}] {clean_line(citation.path)} ({pages}): “{quote}”")
    for label, texts in (("Not supported by the source it cites", answer.unsupported),
                         ("Without a citation", answer.uncited)):
        if texts:
            print(f"\n{label}:")
            for text in texts:
                print(f"  - {clean_line(_shorten(text, 160))}")
    for notice in answer.notices:
        print(f"\n({clean(notice)})", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from ui.doctor import render, run_checks

    findings = run_checks(settings)
    if args.json:
        _print_json({"findings": [finding.to_json() for finding in findings],
                     "ok": all(finding.level != "problem" for finding in findings)})
    else:
        print(clean(render(findings, settings.data_dir)))
    return 1 if any(finding.level == "problem" for finding in findings) else 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from rag.index.catalog import Catalog

    catalog_path = settings.data_dir / "catalog.sqlite3"
    if not catalog_path.exists():
        counts: dict[str, int] = {}
        chunks = 0
        failures: list[dict[str, Any]] = []
        unfinished: list[str] = []
    else:
        catalog = Catalog(catalog_path)
        try:
            counts = catalog.status_counts()
            chunks = catalog.chunk_count()
            documents = catalog.documents()
            failures = [{"path": d.path, "status": d.status, "error": d.error}
                        for d in documents if d.status in ("failed", "skipped")]
            unfinished = [d.path for d in documents if d.status == "partial"]
        finally:
            catalog.close()
    from dataclasses import asdict

    from ingest.control import IndexingControl, read_progress

    progress = read_progress(settings.data_dir)
    data = {
        "data_dir": str(settings.data_dir),
        # partial: a large file written in parts, being written now or interrupted (the next run finishes it)
        "documents": {status: counts.get(status, 0) for status in ("indexed", "failed", "skipped", "partial")},
        "total_documents": sum(counts.values()),
        "chunks": chunks,
        "failures": failures,
        "unfinished": unfinished,
        "paused": IndexingControl(settings.data_dir).paused,
        "indexing": asdict(progress) if progress is not None else None,
    }
    if args.json:
        _print_json(data)
        return 0
    print(f"Data folder: {clean_line(str(settings.data_dir))}")
    docs = data["documents"]
    print(f"Documents: {docs['indexed']} indexed, {docs['failed']} failed, {docs['skipped']} skipped"  # type: ignore[index]
          + (f", {docs['partial']} partly written" if docs["partial"] else ""))  # type: ignore[index]
    print(f"Chunks: {chunks}")
    if progress is not None:
        state = "paused" if data["paused"] else progress.state
        line = f"Indexing (pid {progress.pid}): {state}, {progress.done}/{progress.total} files"
        if progress.current:
            line += f", now {clean_line(progress.current)}"
            if progress.passages_total and progress.passages_done < progress.passages_total:
                line += f" (passages {progress.passages_done:,}/{progress.passages_total:,})"
        if progress.pending:
            line += f", {progress.pending} changes waiting"
        print(line)
    elif data["paused"]:
        print("Indexing is paused (`archivist resume` to continue).")
    for failure in failures:
        print(f"  {failure['status']}: {clean_line(failure['path'])}: {clean_line(failure['error'] or '')}")
    for path in unfinished:
        print(f"  partly written (the next indexing run finishes it): {clean_line(path)}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.benchmark == "grounding":
        return cmd_eval_grounding(args, settings)
    if args.benchmark == "answers":
        return cmd_eval_answers(args, settings)
    from evaluation.beir import eval_beir
    from evaluation.financebench import eval_financebench
    from ui.progress import FileProgress

    def progress(total: int, description: str) -> FileProgress:
        return FileProgress(total, description, unit="file" if description == "Indexing" else "query")

    # --data-dir names the throw-away index here; by default it lives in the cache folder.
    data_dir = args.data_dir
    if args.benchmark == "beir":
        result = eval_beir(args.folder, args.split, settings, args.mode, data_dir=data_dir, limit=args.limit,
                           progress=progress)
    else:
        result = eval_financebench(args.folder, settings, args.mode, data_dir=data_dir, progress=progress,
                                   rename=args.rename, context=args.context)
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            if key not in RECORD_KEYS:
                print(f"{key}: {clean_line(str(value))}")
        print("(the settings, the machine and the package versions are in --json)")
    return 0


RECORD_KEYS = ("settings", "machine", "renamed")  # long records, printed only with --json


def cmd_eval_answers(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation.answers import eval_answers
    from rag.factory import make_chat
    from ui.progress import FileProgress

    def progress(total: int, description: str) -> FileProgress:
        return FileProgress(total, description, unit="file" if description == "Indexing" else "question")

    result = eval_answers(args.folder, settings, make_chat, args.mode, limit=args.limit, data_dir=args.data_dir,
                          progress=progress, rename=args.rename)
    if args.json:
        _print_json(result)
        return 0
    for key, value in result.items():
        if key not in (*RECORD_KEYS, "answers", "ingest"):
            print(f"{key}: {clean_line(str(value))}")
    for row in result["answers"] if isinstance(result["answers"], list) else []:
        verdict = {True: "correct", False: "wrong", None: "not numeric"}[row["correct"]]
        print(f"\n[{verdict}] {clean_line(str(row['question']))}\n  gold: {clean_line(str(row['gold']))}"
              f"\n  answer: {clean_line(_shorten(str(row['answer']), 400))}")
    print("(the settings, the machine and the package versions are in --json)")
    return 0


def cmd_eval_grounding(args: argparse.Namespace, settings: Settings) -> int:
    from evaluation.grounding import evaluate_grounding, product_chunker
    from rag.answer.support import SupportScorer
    from rag.factory import make_embedder
    from ui.progress import FileProgress

    def progress(total: int, description: str) -> FileProgress:
        return FileProgress(total, description, unit="claim")

    embedder = make_embedder(settings)
    scorer = SupportScorer(embedder, settings.support)
    result = evaluate_grounding(args.folder, args.split, scorer, product_chunker(settings, embedder),
                                settings, limit=args.limit, progress=progress)
    if args.json:
        _print_json(result)
        return 0
    sets: Any = result["evidence_sets"]
    print(f"SciFact {result['split']}: {result['claims']} claim-evidence pairs ({result['distinct_claims']} claims)")
    print(f"  passages as the product shows them (chunks holding gold): {result['passages']}")
    print(f"  quote accuracy@1: {result['quote_accuracy@1']:.3f} (a sentence at random: {result['chance@1']:.3f})")
    print(f"  quote accuracy@3: {result['quote_accuracy@3']:.3f}")
    print(f"  per evidence set ({sets['count']}): @1 {sets['quote_accuracy@1']:.3f} (best possible "
          f"{sets['best_possible@1']:.3f}), @3 {sets['quote_accuracy@3']:.3f}")
    print(f"  whole abstracts with their title (as before): @1 {result['quote_accuracy@1_whole_abstract']:.3f}, "
          f"@3 {result['quote_accuracy@3_whole_abstract']:.3f}")
    return 0


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.control import IndexingControl, read_progress

    IndexingControl(settings.data_dir).pause()
    owner = read_progress(settings.data_dir)
    who = f"the indexer (pid {owner.pid})" if owner else "the next indexing run"
    print(f"Paused: {who} stops after the file in hand. `archivist resume` continues.", file=sys.stderr)
    return 0


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.control import IndexingControl

    IndexingControl(settings.data_dir).resume()
    print("Resumed.", file=sys.stderr)
    return 0


def _low_priority() -> None:
    """Indexing is background work: let the person's own programs go first."""
    with contextlib.suppress(OSError):
        os.nice(10)


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.indexing import writable_index
    from ingest.pipeline import FileResult, Ingester, IngestReport
    from ingest.watch import Watcher

    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():
            # Asked twice: quit now, without closing under the worker. SQLite rolls back the unfinished
            # write, the kernel frees the lock, and the next start rescans what was in hand.
            os._exit(130)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)

    def on_file(result: FileResult) -> None:
        if result.outcome.value != "unchanged":
            reason = f" ({result.reason})" if result.reason else ""
            print(f"{result.outcome.value}: {clean_line(result.path + reason)}", file=sys.stderr, flush=True)

    def on_report(report: IngestReport) -> None:
        for path in report.removed:
            print(f"removed: {clean_line(path)}", file=sys.stderr, flush=True)

    with writable_index(settings) as index:
        _low_priority()
        watcher = Watcher(Ingester(index, settings), args.paths, on_report=on_report, on_file=on_file)
        try:
            watcher.start()
            watching = clean_line(", ".join(str(p) for p in watcher.roots))
            print(f"Watching {watching}. Press Ctrl-C to stop.", file=sys.stderr)
            while not stop.wait(0.5):
                pass
            print("Stopping after the file in hand… (Ctrl-C again quits at once)", file=sys.stderr, flush=True)
        finally:
            watcher.stop()  # returns once the worker has ended: only then is the index closed (on leaving)
    return 0


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    from ui.launch import streamlit_command

    command = streamlit_command(host=args.host, port=args.port, data_dir=settings.data_dir, paths=args.paths)
    print(f"Archivist is starting at http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    os.execv(command[0], command)  # Streamlit takes over this process: Ctrl-C and SIGTERM reach it directly
    return 0  # not reached


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


if __name__ == "__main__":
    sys.exit(main())
