"""The tools research mode gives the model, and the dispatcher that runs its calls (`Toolbox`).

- `search`: the library's hybrid search (rag/search/retrieve.py) with optional folder, type and name filters;
  the passages come back as the prompt's source blocks, each under its label.
- `open`: a page of a document the model has seen, as numbered lines (like gpt-oss's browser page view),
  read back from the catalog's chunks: only documents in the index, never a path on disk.
- `find`: a phrase in a whole document, ignoring case: the matching lines, under their page's label.
- `python` (when a Calculator is given): model-written code, run in the sandbox.

Every passage and page shown is labelled through the answer's Ledger (rag/tools/labels.py). A call never
raises: misuse (an unknown tool, bad arguments, a label or file the model has not seen) comes back as a
failed outcome whose text tells the model what was wrong and what to do instead.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from rag.errors import ArchivistError
from rag.index.catalog import ChunkRow, DocumentRow
from rag.index.index import Index
from rag.llm.chat import ToolCall, ToolSpec
from rag.quoting import neutralise, source_block
from rag.records import Filters, Hit
from rag.search.retrieve import search
from rag.settings import Settings
from rag.tools.calculator import Calculator
from rag.tools.labels import Ledger, Line, is_view, text_lines, view_id
from rag.tools.specs import FIND, KINDS, OPEN, PYTHON, SEARCH, find_spec, open_spec, python_spec, search_spec

logger = logging.getLogger(__name__)

MOST_RESULTS = 20  # a search returns at most this many passages (or result_passages, if that is more)
VIEW_LINES_FACTOR = 4  # an open may ask for up to this many times page_lines
MAX_FIND_LINES = 40  # matching lines one find shows
MAX_PATTERN = 200
MAX_QUERY = 1000

# The model's words for a type, mapped to the catalog's kinds.
_KIND_ALIASES = {
    "pdf": "pdf", "text": "text", "txt": "text", "plain": "text", "markdown": "markdown", "md": "markdown",
    "html": "html", "htm": "html", "web": "html", "docx": "docx", "doc": "docx", "word": "docx",
}
_GLOB = re.compile(r"[*?\[]")
_RUN = re.compile(r"\s+|\S+")
# A label as the model may write it: 7, "7", "[7]", "【7†report.pdf】"
_LABEL = re.compile(r"\s*[\[【]?\s*(\d+)\s*(?:[\]】†].*)?", re.DOTALL)
# A label part as the model may copy it: "report.pdf — p. 41 (Heading)"
_NAME_AND_PAGE = re.compile(r"(?P<name>.+?)\s+[—-]+\s+pp?\.\s*(?P<page>\d+).*", re.DOTALL)


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call gave: the text for the model and a line for the person."""

    text: str  # sent back to the model as the tool's result
    summary: str  # one line for the person: "Searched: revenue 2022, 8 passages"
    failed: bool = False  # the call was misused or could not run; `text` says why and what to do instead
    labels: tuple[int, ...] = ()  # labels this call gave for the first time
    shown: tuple[int, ...] = ()  # every label the result shows, new or not, in order
    code: str = ""  # a calculation's code, as the model wrote it
    output: str = ""  # a calculation's printed output

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"summary": self.summary, "failed": self.failed, "labels": list(self.labels)}
        if self.code:
            data.update(code=self.code, output=self.output)
        return data


class _Misuse(Exception):
    """A call the model got wrong: `message` goes back to it, `summary` to the person."""

    def __init__(self, message: str, summary: str) -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary


@dataclass(frozen=True)
class _Target:
    """A document a call is about, with the labelled passage that named it (if one did)."""

    document: DocumentRow
    hit: Hit | None
    label: int | None


class Toolbox:
    """Runs the model's tool calls over the index for one answer, labelling what it shows in `ledger`."""

    def __init__(self, index: Index, settings: Settings, ledger: Ledger, calculator: Calculator | None = None) -> None:
        self.index = index
        self.settings = settings
        self.ledger = ledger
        self.calculator = calculator
        self._pages: dict[str, dict[int, str]] = {}  # document id -> page -> text, read once per answer
        self._page_lines: dict[tuple[str, int], list[Line]] = {}
        self._current: int | None = None  # the label of the page opened (or found in) last
        research = settings.research
        self._most = max(research.result_passages, MOST_RESULTS)
        self._handlers: dict[str, Callable[[dict[str, Any]], ToolOutcome]] = {
            SEARCH: self._search, OPEN: self._open, FIND: self._find,
        }
        specs = [search_spec(research.result_passages, self._most), open_spec(research.page_lines), find_spec()]
        if calculator is not None:
            self._handlers[PYTHON] = self._calculate
            specs.append(python_spec())
        self.specs: list[ToolSpec] = specs
        self._trained = {spec.trained_name: spec.name for spec in specs if spec.trained_name}

    def call(self, call: ToolCall) -> ToolOutcome:
        """Run one call. Never raises: misuse and failures come back as a failed outcome."""
        name = self._trained.get(call.name, call.name)
        handler = self._handlers.get(name)
        try:
            if handler is None:
                raise _Misuse(
                    f"There is no tool named {call.name!r}. The tools are: "
                    f"{', '.join(spec.name for spec in self.specs)}.",
                    f"Unknown tool: {_short(call.name, 40)}",
                )
            if call.arguments_error:
                raise _Misuse(
                    f"The arguments of {name} could not be read ({call.arguments_error}). Send them as one JSON "
                    f"object, e.g. {_EXAMPLES[name]}.",
                    f"{name.capitalize()} failed: unreadable arguments",
                )
            return handler(dict(call.arguments))
        except _Misuse as misuse:
            return ToolOutcome(text=f"Error: {misuse.message}", summary=misuse.summary, failed=True)
        except ArchivistError as error:
            logger.warning("tool %s failed: %s", name, error)
            return ToolOutcome(text=f"Error: the {name} tool could not run: {error}",
                               summary=f"{name.capitalize()} failed: {_short(str(error), 80)}", failed=True)
        except Exception:  # a bug must not end the answer: the model is told, the log has the trace
            logger.exception("tool %s failed", name)
            return ToolOutcome(text=f"Error: the {name} tool failed unexpectedly. Try another way.",
                               summary=f"{name.capitalize()} failed unexpectedly", failed=True)

    # ----- search -----
    def _search(self, arguments: dict[str, Any]) -> ToolOutcome:
        query = _text(arguments, "query", SEARCH, required=True, longest=MAX_QUERY)
        topn = _whole(arguments, "topn", SEARCH) or _whole(arguments, "top_n", SEARCH)
        k = min(topn, self._most) if topn and topn > 0 else self.settings.research.result_passages
        filters, described = self._filters(arguments)
        summary = f"Searched: {_short(query, 60)}{described}"
        if filters.active and self.index.catalog.count_documents(filters) == 0:
            return ToolOutcome(
                text=f"No document in the library matches{described}. Search again without some of the filters.",
                summary=f"{summary}, no matching documents",
            )
        hits = search(self.index, query, k, filters=filters, tuning=self.settings.retrieval)
        if not hits:
            return ToolOutcome(
                text=f"No passages matched {neutralise(query)!r}{described}. Try other words: names, figures or "
                "synonyms.",
                summary=f"{summary}, no passages",
            )
        before = len(self.ledger)
        labels = self.ledger.add_all(hits)
        blocks = [source_block(label, hit) for label, hit in zip(labels, hits, strict=True)]
        text = (
            f"{len(hits)} passages for {neutralise(query)!r}{described}:\n\n" + "\n\n".join(blocks)
            + "\n\nCite a passage as [n]. To read around one, open it: open(id=n)."
        )
        return ToolOutcome(
            text=text, summary=f"{summary}, {len(hits)} passages",
            labels=tuple(label for label in dict.fromkeys(labels) if label > before), shown=tuple(labels),
        )

    def _filters(self, arguments: dict[str, Any]) -> tuple[Filters, str]:
        """The search filters the arguments ask for, and a few words describing them (" (type pdf)")."""
        words: list[str] = []
        folder = _text(arguments, "folder", SEARCH)
        folders: list[str] = []
        if folder:
            folders = self.index.catalog.folders_matching(folder)
            if not folders:
                raise _Misuse(
                    f"No folder named {folder!r} holds documents of the library. Search without `folder`, or "
                    "narrow by `name` (part of the file name) instead.",
                    f"Search failed: no folder {_short(folder, 40)!r}",
                )
            words.append(f"in {folder}")
        kinds: tuple[str, ...] = ()
        kind = arguments.get("type")
        if kind not in (None, "", []):
            wanted = kind if isinstance(kind, list) else [kind]
            mapped = [_KIND_ALIASES.get(str(item).strip().lower().lstrip(".")) for item in wanted]
            if not all(mapped):
                raise _Misuse(
                    f"`type` must be one of {', '.join(KINDS)}, not {kind!r}.",
                    f"Search failed: unknown type {_short(str(kind), 20)!r}",
                )
            kinds = tuple(dict.fromkeys(item for item in mapped if item))
            words.append("type " + "/".join(kinds))
        name = _text(arguments, "name", SEARCH)
        glob = None
        if name:
            glob = name if _GLOB.search(name) else f"*{name}*"
            words.append(f"named {glob}")
        described = f" ({', '.join(words)})" if words else ""
        if len(folders) > 1:  # several folders of that name: their documents, by id
            ids = [doc.id for under in folders for doc in self.index.catalog.documents(under)
                   if doc.status in ("indexed", "partial")]
            return Filters(kinds=kinds, name_glob=glob, document_ids=tuple(dict.fromkeys(ids))), described
        return Filters(folder=folders[0] if folders else None, kinds=kinds, name_glob=glob), described

    # ----- open -----
    def _open(self, arguments: dict[str, Any]) -> ToolOutcome:
        reference = _first(_reference(arguments, "id"), _reference(arguments, "cursor"))
        if reference is None:
            if self._current is None:
                raise _Misuse(
                    "open needs an `id`: the label of a passage you have seen, e.g. open(id=3), or the name of "
                    "its file.",
                    "Open failed: no passage named",
                )
            reference = self._current
        target, page_hint = self._target(reference, OPEN)
        pages = self._document_pages(target.document)
        name = PurePath(target.document.path).name
        page = _whole(arguments, "page", OPEN)
        if page is None or page <= 0:
            page = page_hint or (target.hit.page_start if target.hit else min(pages))
        if page not in pages:
            raise _Misuse(
                f"{neutralise(name)} has no page {page} with text. Its pages with text are {_ranges(sorted(pages))}.",
                f"Open failed: {_short(name, 40)} has no p. {page}",
            )
        text = pages[page]
        lines = self._lines(target.document, page)
        label, new = self._label_view(target.document, page, text)
        research = self.settings.research
        count = _whole(arguments, "num_lines", OPEN)
        count = min(count, research.page_lines * VIEW_LINES_FACTOR) if count and count > 0 else research.page_lines
        loc = _whole(arguments, "loc", OPEN)
        if loc is not None and loc > len(lines):
            raise _Misuse(
                f"Line {loc} is past the end: p. {page} of {neutralise(name)} has {_count(len(lines), 'line')}. "
                f"Open it at a line from 1 to {len(lines)}.",
                f"Open failed: {_short(name, 40)} p. {page} has {_count(len(lines), 'line')}",
            )
        if loc is None or loc < 1:
            loc = 1
            if target.hit is not None and not is_view(target.hit) and target.hit.page_start == page:
                anchor = _line_of(text, target.hit.text, lines)
                if len(lines) > count and anchor > count // 2:  # far down the page: start just before it
                    loc = max(1, anchor - 2)
        last = min(len(lines), loc + count - 1)
        shown = "\n".join(f"L{line.number}: {neutralise(text[line.start:line.end])}" for line in lines[loc - 1 : last])
        hints = []
        if last < len(lines):
            hints.append(f"Lines {last + 1}–{len(lines)} follow: open(id={label}, loc={last + 1}).")
        if loc > 1:
            hints.append(f"Lines 1–{loc - 1} come before: open(id={label}, loc={max(1, loc - count)}).")
        if len(pages) > 1:
            hints.append(f"{neutralise(name)} has pages {_ranges(sorted(pages))}: open(id={label}, page=N) turns "
                         "to one.")
        hints.append(f"Cite lines of this page as 【{label}†L{loc}" + (f"-L{last}】." if last > loc else "】."))
        text_out = (
            f"[{label}] {neutralise(name)} — p. {page} (lines {loc}–{last} of {len(lines)})\n"
            f"<source>\n{shown}\n</source>\n" + "\n".join(hints)
        )
        self._current = label
        return ToolOutcome(text=text_out, summary=f"Opened: {name} p. {page}", labels=(label,) if new else (),
                           shown=(label,))

    # ----- find -----
    def _find(self, arguments: dict[str, Any]) -> ToolOutcome:
        pattern = _text(arguments, "pattern", FIND, required=True, longest=MAX_PATTERN)
        reference = _first(_reference(arguments, "cursor"), _reference(arguments, "id"))
        if reference is None:
            if self._current is None:
                raise _Misuse(
                    "find needs a document: give `cursor`, the label of a passage or page of it you have seen, "
                    "e.g. find(pattern='net income', cursor=3).",
                    "Find failed: no document named",
                )
            reference = self._current
        target, _ = self._target(reference, FIND)
        name = PurePath(target.document.path).name
        pages = self._document_pages(target.document)
        words = pattern.split()
        regex = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
        matches: list[tuple[int, str, list[int]]] = []  # page, its text, its matching line numbers
        total = 0
        for page in sorted(pages):
            text = pages[page]
            lines = self._lines(target.document, page)
            ends = [line.end for line in lines]
            numbers: list[int] = []
            for match in regex.finditer(text):
                top = bisect.bisect_right(ends, match.start())  # the first line ending after the match starts
                bottom = top
                while bottom < len(lines) and lines[bottom].start < match.end():
                    bottom += 1
                numbers += [line.number for line in lines[top:bottom]]
            numbers = list(dict.fromkeys(numbers))
            if numbers:
                total += len(numbers)
                matches.append((page, text, numbers))
        quoted = neutralise(pattern)
        if not matches:
            return ToolOutcome(
                text=f"No line of {neutralise(name)} contains {quoted!r}. Try a shorter or different phrase, or "
                "search the library: search(query=...).",
                summary=f"Found {_short(pattern, 40)!r}: no lines in {name}",
            )
        before = len(self.ledger)
        blocks, shown = [], []
        room = MAX_FIND_LINES
        first: tuple[int, int] | None = None  # (label, line) of the first match shown: matches is not empty
        for page, text, numbers in matches:
            if room <= 0:
                break
            label, _ = self._label_view(target.document, page, text)
            lines = self._lines(target.document, page)
            kept = numbers[:room]
            room -= len(kept)
            first = first or (label, kept[0])
            shown.append(label)
            body = "\n".join(f"L{n}: {neutralise(text[lines[n - 1].start:lines[n - 1].end])}" for n in kept)
            blocks.append(f"[{label}] {neutralise(name)} — p. {page} ({_count(len(numbers), 'matching line')} of "
                          f"{len(lines)})\n<source>\n{body}\n</source>")
        first = first or (shown[0], 1)
        self._current = first[0]
        head = f"{_count(total, 'line')} of {neutralise(name)} {'contains' if total == 1 else 'contain'} {quoted!r}"
        if total > MAX_FIND_LINES:
            head += f" (the first {MAX_FIND_LINES} are shown; a longer phrase narrows them)"
        text_out = (
            head + ":\n\n" + "\n\n".join(blocks)
            + f"\n\nTo read around a line, open its page there: open(id={first[0]}, loc={max(1, first[1] - 5)})."
        )
        return ToolOutcome(
            text=text_out, summary=f"Found {_short(pattern, 40)!r}: {_count(total, 'line')} in {name}",
            labels=tuple(label for label in shown if label > before), shown=tuple(shown),
        )

    # ----- python -----
    def _calculate(self, arguments: dict[str, Any]) -> ToolOutcome:
        if self.calculator is None:  # not offered then; a model calling it anyway is told so
            raise _Misuse(f"There is no tool named {PYTHON!r}.", "Calculation refused: no calculator")
        code = arguments.get("code")
        if code is None:
            strings = [value for value in arguments.values() if isinstance(value, str)]
            code = strings[0] if len(strings) == 1 else None  # a server that named the one argument otherwise
        if not isinstance(code, str) or not code.strip():
            raise _Misuse(f"python needs `code`: Python statements that print their results, e.g. {_EXAMPLES[PYTHON]}.",
                          "Calculation failed: no code")
        result = self.calculator.run(code)
        expression = _expression(code)
        output = result.output
        if not result.ok:
            text = f"Error: {result.error}" + (f"\nOutput before the error:\n{output}" if output.strip() else "")
            return ToolOutcome(text=neutralise(text), summary=f"Calculation failed: {_short(result.error, 80)}",
                               failed=True, code=code, output=output)
        if not output.strip():
            text = "(no output: the code printed nothing; print() the values you want to see)"
        else:
            text = output + ("\n[the output was cut here: print less]" if result.truncated else "")
        first_line = next((line.strip() for line in output.splitlines() if line.strip()), "no output")
        return ToolOutcome(text=neutralise(text), summary=f"Calculated: {expression} → {_short(first_line, 60)}",
                           code=code, output=output)

    # ----- documents, pages, labels -----
    def _target(self, reference: int | str, tool: str) -> tuple[_Target, int | None]:
        """The document a label or a file name the model has seen points at, and the page its words named."""
        if isinstance(reference, int):
            if reference not in self.ledger:
                seen = f"the labels so far are 1–{len(self.ledger)}" if self.ledger else "no passage has been shown"
                raise _Misuse(
                    f"There is no passage [{reference}]: {seen}. Use a label from the sources or from a search "
                    "result.",
                    f"{tool.capitalize()} failed: no passage [{reference}]",
                )
            hit = self.ledger.hit(reference)
            return _Target(self._document(hit.path, tool), hit, reference), None
        name, page = reference, None
        if match := _NAME_AND_PAGE.fullmatch(reference):
            name, page = match.group("name"), int(match.group("page"))
        wanted = name.strip().strip("'\"`").strip()
        paths = self.ledger.paths()
        found = [path for path in paths if path == wanted]
        if not found:
            found = [path for path in paths if PurePath(path).name.lower() == wanted.lower()]
        if not found and "/" in wanted:
            found = [path for path in paths if path.lower().endswith("/" + wanted.lower().lstrip("/"))]
        if not found:
            raise _Misuse(
                f"{neutralise(wanted)!r} is not a file you have seen a passage of. Name a passage by its label, "
                f"e.g. {_BY_LABEL[tool]}, or search for the file first: search(query=..., "
                f"name={neutralise(PurePath(wanted).name)!r}).",
                f"{tool.capitalize()} failed: {_short(PurePath(wanted).name, 40)!r} not seen",
            )
        if len(found) > 1:
            labels = ", ".join(f"[{self.ledger.labels_of_path(path)[0]}]" for path in found)
            raise _Misuse(
                f"Several files you have seen are named {neutralise(wanted)!r}; name one by a label of its "
                f"passages: {labels}.",
                f"{tool.capitalize()} failed: {_short(wanted, 40)!r} is ambiguous",
            )
        # Named by its file: the page of its first passage (unless the name came with a page), from the top.
        label = self.ledger.labels_of_path(found[0])[0]
        return _Target(self._document(found[0], tool), None, label), page or self.ledger.hit(label).page_start

    def _document(self, path: str, tool: str) -> DocumentRow:
        document = self.index.catalog.document_by_path(path)
        if document is None or not self._document_pages(document):
            name = PurePath(path).name
            raise _Misuse(
                f"{neutralise(name)} is no longer in the library (it was removed or changed while you worked). "
                "Search again for what you needed from it.",
                f"{tool.capitalize()} failed: {_short(name, 40)} is gone",
            )
        return document

    def _document_pages(self, document: DocumentRow) -> dict[int, str]:
        if document.id not in self._pages:
            self._pages[document.id] = page_texts(self.index.catalog.chunks_of(document.id))
        return self._pages[document.id]

    def _lines(self, document: DocumentRow, page: int) -> list[Line]:
        key = (document.id, page)
        if key not in self._page_lines:
            self._page_lines[key] = text_lines(self._document_pages(document)[page])
        return self._page_lines[key]

    def _label_view(self, document: DocumentRow, page: int, text: str) -> tuple[int, bool]:
        """The label of the view of one page (its old one if it was opened or found before), and whether
        it is new."""
        before = len(self.ledger)
        hit = Hit(rank=0, score=0.0, path=document.path, page_start=page, page_end=page,
                  chunk_id=view_id(document.id, page), text=text)
        label = self.ledger.add(hit)
        return label, label > before


def page_texts(chunks: Sequence[ChunkRow]) -> dict[int, str]:
    """A document's text page by page, rebuilt from its chunks (in order): the sentences a chunk repeats
    from the one before (the chunker's overlap) appear once, and a line `# Heading > Sub` marks where a
    section starts. Formats without pages are all page 1."""
    parts: dict[int, list[str]] = {}
    previous: dict[int, ChunkRow] = {}
    for chunk in sorted(chunks, key=lambda row: row.ordinal):
        for page in range(chunk.page_start, chunk.page_end + 1):
            before = previous.get(page)
            text = chunk.text.strip()
            same_section = before is not None and before.headings == chunk.headings
            if same_section and before is not None and before.ordinal == chunk.ordinal - 1:
                text = without_overlap(before.text, text)
            if chunk.headings and not same_section:
                parts.setdefault(page, []).append("# " + " > ".join(chunk.headings))
            if text:
                parts.setdefault(page, []).append(text)
            previous[page] = chunk
    return {page: "\n\n".join(texts) for page, texts in parts.items() if texts}


def _offset(text: str, collapsed: int) -> int:
    """Where in `text` (stripped) its version with white space runs made one space reaches `collapsed`."""
    count = 0
    for run in _RUN.finditer(text):
        size = 1 if run.group()[0].isspace() else len(run.group())
        if count + size > collapsed:
            return run.start() + (0 if size == 1 and run.group()[0].isspace() else collapsed - count)
        count += size
    return len(text)


def without_overlap(previous: str, text: str, probe: int = 8, window: int = 4000) -> str:
    """`text` without the start it repeats from the end of `previous` (the chunker's overlap: whole
    sentences, re-joined with spaces, so white space is compared loosely). Looks at most `window` characters
    into each: an overlap is a few sentences."""
    stripped = text.strip()
    before = previous.strip()
    head = " ".join(stripped[:window].split())
    tail = " ".join(before[-window:].split())
    if not head or not tail:
        return stripped
    start = head[:probe]
    at = tail.find(start, max(0, len(tail) - len(head)))
    while at >= 0:  # the first place is the longest repeat
        repeated = tail[at:]
        whole_sentence = tail[at - 1] == " " if at else len(before) <= window
        if whole_sentence and head.startswith(repeated):
            return stripped[_offset(stripped, len(repeated)):].strip()
        at = tail.find(start, at + 1)
    return stripped


_BY_LABEL = {OPEN: "open(id=3)", FIND: "find(pattern='net income', cursor=3)"}
_EXAMPLES = {
    SEARCH: '{"query": "net income 2022"}',
    OPEN: '{"id": 3}',
    FIND: '{"pattern": "net income", "cursor": 3}',
    PYTHON: '{"code": "print((4350 - 3975) / 3975)"}',
}


def _text(arguments: dict[str, Any], key: str, tool: str, required: bool = False, longest: int = 500) -> str:
    value = arguments.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _Misuse(f"{tool} needs `{key}`, e.g. {_EXAMPLES[tool]}.", f"{tool.capitalize()} failed: no {key}")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Misuse(f"`{key}` must be text, not {type(value).__name__}. For example: {_EXAMPLES[tool]}.",
                      f"{tool.capitalize()} failed: bad {key}")
    text = str(value).strip()
    if len(text) > longest:
        raise _Misuse(f"`{key}` is too long ({len(text):,} characters; at most {longest:,}). Shorten it.",
                      f"{tool.capitalize()} failed: {key} too long")
    return text


def _whole(arguments: dict[str, Any], key: str, tool: str) -> int | None:
    """A whole-number argument (numbers written as text accepted); None when absent."""
    value = arguments.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise _Misuse(f"`{key}` must be a whole number, not {_short(repr(value), 40)}.",
                  f"{tool.capitalize()} failed: bad {key}")


def _reference(arguments: dict[str, Any], key: str) -> int | str | None:
    """A label (a number, or text like "[7]") or a file name; None when absent (the browser's -1 default
    means absent too)."""
    value = arguments.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        if not value.strip() or value.strip() == "-1":
            return None
        if match := _LABEL.fullmatch(value):
            return int(match.group(1))
        return value.strip()
    return None


def _first(*values: int | str | None) -> int | str | None:
    return next((value for value in values if value is not None), None)


def _line_of(text: str, passage: str, lines: Sequence[Line]) -> int:
    """The number of the line where `passage` starts in `text` (1 when it cannot be placed)."""
    words = passage.split()[:8]
    if not words:
        return 1
    match = re.search(r"\s+".join(re.escape(word) for word in words), text)
    if match is None:
        return 1
    at = bisect.bisect_right([line.end for line in lines], match.start())
    return lines[at].number if at < len(lines) else 1


def _ranges(numbers: Sequence[int]) -> str:
    """1, 2, 3, 5, 7, 8 -> "1–3, 5, 7–8"."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in spans)


def _expression(code: str) -> str:
    """What a calculation computed, for the person: the printed expression of one-line code."""
    lines = [line.strip() for line in code.strip().splitlines() if line.strip() and not line.strip().startswith("#")]
    printed = [match.group(1).strip() for line in lines if (match := re.fullmatch(r"print\((.*)\)", line))]
    if len(lines) == 1:
        return _short(printed[0] if printed else lines[0], 80)
    if len(printed) == 1:
        return _short(printed[0], 80)
    return f"{len(lines)} lines of Python"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _short(text: str, longest: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= longest else text[: longest - 1] + "…"
