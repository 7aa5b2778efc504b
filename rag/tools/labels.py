"""The ledger of one answer's passages: every passage the model sees gets a label unique within the answer.

The prompt's sources are labelled 1..n in their order; each later passage a tool shows (a search result, an
opened page view) gets the next number, and a passage shown again keeps the label it had. `passages` lists
them in label order, so the grounding code, which reads `passages[n - 1]` for a citation `[n]`, works over
everything the model saw, prompt and tools alike.

A page view (a page of a document opened with numbered lines) is a Hit like any other: its `text` is the
page's whole text, its `chunk_id` the synthetic `page:<document id>:<page>` (stable, and never a catalog
chunk id, which are 24 hex digits), `page_start == page_end == page`. Its lines are `text_lines(hit.text)`:
the numbers the model saw (`L1`, `L2`, …) are the same whichever part of the page it was shown, so a
citation `【12†L3-L7】` means the same lines of view 12 however the model scrolled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from rag.records import Hit

LINE_WIDTH = 80  # characters a numbered line holds at most: gpt-oss's browser wraps pages at 80 too
VIEW_PREFIX = "page:"

# 【12†L3-L7】, 【12†L3】, and the browser's fuller 【12†title†L3-L7】 forms
_LINE_CITATION = re.compile(r"【(\d+)†(?:[^】†]*†)?L(\d+)(?:\s*[-–]\s*L?(\d+))?】")


def view_id(document_id: str, page: int) -> str:
    """The synthetic chunk id of the view of one page of a document."""
    return f"{VIEW_PREFIX}{document_id}:{page}"


def is_view(hit: Hit) -> bool:
    return hit.chunk_id.startswith(VIEW_PREFIX)


@dataclass(frozen=True)
class Line:
    """One numbered line of a text: `text[start:end]`, no line break inside, never empty."""

    number: int  # 1-based
    start: int
    end: int


def text_lines(text: str, width: int = LINE_WIDTH) -> list[Line]:
    """The text cut into numbered lines: at its line breaks, then at the last space before `width` (a word
    longer than that is cut). Blank lines are left out: they would spend the model's line budget on nothing.
    Offsets point into `text` itself, so a range of lines is an exact slice of it."""
    lines: list[Line] = []
    for match in re.finditer(r"[^\n]+", text):
        start, end = match.start(), match.end()
        while start < end:
            while start < end and text[start].isspace():
                start += 1
            if start >= end:
                break
            stop = end
            if end - start > width:
                space = text.rfind(" ", start + 1, start + width + 1)
                stop = space if space > start else start + width
            trimmed = stop
            while trimmed > start and text[trimmed - 1].isspace():
                trimmed -= 1
            lines.append(Line(len(lines) + 1, start, trimmed))
            start = stop
    return lines


@dataclass(frozen=True)
class LineCitation:
    """A citation of lines of a passage, `【n†L3-L7】`, where it stands in the answer."""

    n: int
    first: int
    last: int
    start: int  # offsets of the citation mark in the answer
    end: int


def line_citations(answer: str) -> list[LineCitation]:
    """Every citation of lines in `answer` (`【12†L3-L7】`, `【12†L3】`), in order; reversed ranges are put
    the right way round. `[n]` and `【n】` cite a whole passage and are not listed."""
    found = []
    for match in _LINE_CITATION.finditer(answer):
        first = int(match.group(2))
        last = int(match.group(3)) if match.group(3) else first
        first, last = min(first, last), max(first, last)
        found.append(LineCitation(int(match.group(1)), first, last, match.start(), match.end()))
    return found


def _normal(text: str) -> str:
    return " ".join(text.split())


class Ledger:
    """The passages the model has seen in one answer, by label (1, 2, 3… in the order shown).

    `Ledger(prompt_passages)` labels the prompt's sources 1..n exactly as the prompt numbered them; `add`
    labels what a tool shows next. A passage already shown keeps its label: the same chunk id, or (for a
    passage, not a page view) text that lies whole inside a passage of the same file shown before (a chunk
    inside a merged prompt passage or inside an opened page). Not thread-safe: one answer, one loop."""

    def __init__(self, prompt_passages: Iterable[Hit] = ()) -> None:
        self._hits: list[Hit] = []
        self._normal: list[str] = []
        self._by_id: dict[str, int] = {}
        for hit in prompt_passages:
            self._append(hit)  # the prompt already numbered these: never merged, whatever they hold

    def __len__(self) -> int:
        return len(self._hits)

    def __contains__(self, label: object) -> bool:
        return isinstance(label, int) and 1 <= label <= len(self._hits)

    @property
    def passages(self) -> list[Hit]:
        """Every passage shown, in label order: label n is `passages[n - 1]`."""
        return list(self._hits)

    def hit(self, label: int) -> Hit:
        """The passage under `label`; KeyError when there is none."""
        if label not in self:
            raise KeyError(f"no passage is labelled {label} (labels so far: 1–{len(self._hits)})")
        return self._hits[label - 1]

    def label_of(self, hit: Hit) -> int | None:
        """The label `hit` was shown under, if it was (by chunk id, or inside a passage of its file)."""
        if hit.chunk_id and hit.chunk_id in self._by_id:
            return self._by_id[hit.chunk_id]
        if is_view(hit):
            return None
        needle = _normal(hit.text)
        if not needle:
            return None
        for index, (shown, text) in enumerate(zip(self._hits, self._normal, strict=True)):
            if shown.path == hit.path and needle in text:
                return index + 1
        return None

    def add(self, hit: Hit) -> int:
        """The label of `hit`: its old one when it was shown before, else the next number."""
        label = self.label_of(hit)
        return label if label is not None else self._append(hit)

    def add_all(self, hits: Sequence[Hit]) -> list[int]:
        return [self.add(hit) for hit in hits]

    def paths(self) -> list[str]:
        """The files the model has seen a passage of, in the order first seen."""
        return list(dict.fromkeys(hit.path for hit in self._hits))

    def labels_of_path(self, path: str) -> list[int]:
        return [index + 1 for index, hit in enumerate(self._hits) if hit.path == path]

    def resolve(self, label: int, lines: tuple[int, int] | None = None) -> Hit:
        """The passage under `label`, narrowed to lines `first..last` (1-based, inclusive) of it when given.

        For the research loop: ground sentences against `passages` as usual (a citation `【12†L3-L7】` counts
        as citing passage 12, see rag/answer/citations.py); then, for each citation that names lines (see
        `line_citations`), call `resolve(n, (first, last))` and show the person that Hit's text (the exact
        lines the model pointed at) instead of the whole page. The narrowed text is an exact slice of the
        passage's text, so its sentences keep their wording; a range partly past the end is cut to the
        passage, one wholly past it gives the whole passage. KeyError for a label that was never given."""
        hit = self.hit(label)
        if lines is None:
            return hit
        numbered = text_lines(hit.text)
        first, last = min(lines), max(lines)
        chosen = [line for line in numbered if first <= line.number <= last]
        if not chosen:
            return hit
        return replace(hit, text=hit.text[chosen[0].start : chosen[-1].end])

    def _append(self, hit: Hit) -> int:
        self._hits.append(hit)
        self._normal.append(_normal(hit.text))
        label = len(self._hits)
        if hit.chunk_id:
            self._by_id.setdefault(hit.chunk_id, label)
        return label
