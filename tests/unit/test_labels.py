"""The ledger of labelled passages: numbering, re-showing, page views and line citations."""

from __future__ import annotations

import pytest

from rag.answer.citations import valid_numbers
from rag.records import Hit
from rag.tools.labels import Ledger, line_citations, text_lines, view_id


def hit(chunk_id: str, text: str, path: str = "/lib/a.pdf", page: int = 1) -> Hit:
    return Hit(rank=1, score=1.0, path=path, page_start=page, page_end=page, chunk_id=chunk_id, text=text)


def test_prompt_passages_are_one_to_n_and_tool_passages_follow() -> None:
    ledger = Ledger([hit("a", "Alpha."), hit("b", "Beta.")])
    assert ledger.add(hit("c", "Gamma.")) == 3
    assert ledger.add(hit("d", "Delta.")) == 4
    assert [h.chunk_id for h in ledger.passages] == ["a", "b", "c", "d"]
    assert ledger.hit(3).text == "Gamma." and len(ledger) == 4


def test_the_prompt_numbering_is_kept_even_for_passages_that_repeat() -> None:
    # The prompt has already numbered its sources: the ledger must agree with it whatever they hold.
    ledger = Ledger([hit("a", "Same text."), hit("b", "Same text.")])
    assert len(ledger) == 2 and ledger.passages[1].chunk_id == "b"


def test_a_passage_shown_again_keeps_its_label() -> None:
    ledger = Ledger([hit("a", "Alpha.")])
    assert ledger.add(hit("b", "Beta.")) == 2
    assert ledger.add(hit("a", "Alpha.")) == 1
    assert ledger.add(hit("b", "Beta.")) == 2
    assert len(ledger) == 2


def test_a_chunk_inside_a_passage_of_its_file_shown_before_keeps_that_label() -> None:
    merged = hit("m", "First part of the page.\n\nSecond   part, with numbers 4,350.")
    ledger = Ledger([merged])
    assert ledger.add(hit("x", "Second part, with\nnumbers 4,350.")) == 1  # white space compared loosely
    assert ledger.add(hit("y", "Second part, with numbers 4,350.", path="/lib/copy.pdf")) == 2  # another file
    assert ledger.add(hit("z", "Not in it.")) == 3


def test_page_views_are_labelled_once_per_page() -> None:
    ledger = Ledger([hit("a", "Alpha.")])
    page_text = "Alpha.\nMore of the page."
    view = Hit(0, 0.0, "/lib/a.pdf", 2, 2, view_id("doc1", 2), page_text)
    assert ledger.add(view) == 2  # a view is never merged into a passage it contains
    assert ledger.add(view) == 2
    assert ledger.add(Hit(0, 0.0, "/lib/a.pdf", 3, 3, view_id("doc1", 3), "Page three.")) == 3
    assert ledger.add(hit("p", "More of the page.", page=2)) == 2  # a chunk inside the opened page


def test_unknown_labels_raise() -> None:
    ledger = Ledger([hit("a", "Alpha.")])
    assert 1 in ledger and 2 not in ledger and 0 not in ledger
    with pytest.raises(KeyError):
        ledger.hit(2)
    with pytest.raises(KeyError):
        ledger.resolve(0, (1, 2))


def test_text_lines_wrap_at_spaces_and_slice_the_text_exactly() -> None:
    text = "short line\n\n" + "word " * 30 + "\n" + "x" * 170
    lines = text_lines(text, width=40)
    assert [line.number for line in lines] == list(range(1, len(lines) + 1))
    assert text[lines[0].start:lines[0].end] == "short line"
    for line in lines:
        piece = text[line.start:line.end]
        assert piece and len(piece) <= 40 and piece == piece.strip() and "\n" not in piece
    assert [len(text[line.start:line.end]) for line in lines[-5:]] == [40, 40, 40, 40, 10]  # one long word: cut
    assert " ".join(text[line.start:line.end] for line in lines[1:-5]) == ("word " * 30).strip()


def test_a_citation_of_lines_resolves_to_those_lines() -> None:
    page = "\n".join(f"Line {n} says {n * 10}." for n in range(1, 21))
    ledger = Ledger([hit("a", "Alpha.")])
    label = ledger.add(Hit(0, 0.0, "/lib/a.pdf", 41, 41, view_id("doc1", 41), page))
    narrowed = ledger.resolve(label, (3, 5))
    assert narrowed.text == "Line 3 says 30.\nLine 4 says 40.\nLine 5 says 50."
    assert (narrowed.path, narrowed.page_start, narrowed.page_end) == ("/lib/a.pdf", 41, 41)
    assert ledger.resolve(label, (5, 3)).text == narrowed.text
    assert ledger.resolve(label, (19, 99)).text == "Line 19 says 190.\nLine 20 says 200."  # cut to the page
    assert ledger.resolve(label, (50, 60)).text == page  # wholly past the end: the whole page
    assert ledger.resolve(label).text == page


def test_line_citations_are_parsed_and_still_count_as_citing_the_passage() -> None:
    answer = "Net income rose 【2†L3-L7】. It was 4,350 【5†L9】 and 【3†report.pdf†L1-L2】, see [1]."
    found = line_citations(answer)
    assert [(c.n, c.first, c.last) for c in found] == [(2, 3, 7), (5, 9, 9), (3, 1, 2)]
    assert answer[found[0].start:found[0].end] == "【2†L3-L7】"
    assert valid_numbers(answer, 5) == [2, 5, 3, 1]
