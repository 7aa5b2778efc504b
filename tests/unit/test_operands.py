"""A computed figure's operands traced to the passages that print them."""

from __future__ import annotations

from rag.answer.research import operand_labels
from rag.records import Hit


def passage(text: str, n: int) -> Hit:
    return Hit(rank=n, score=1.0, path=f"/docs/report{n}.pdf", page_start=n, page_end=n, chunk_id=f"c{n}", text=text)


def test_each_operand_links_to_the_passages_that_print_it_in_any_usual_spelling() -> None:
    passages = [
        passage("Revenue was $4,350 million in 2023.", 1),
        passage("Revenue was 3 975 million in 2022; margin 12.5%.", 2),
        passage("Nothing numeric here.", 3),
        passage("Again: revenue of 4350.", 4),
    ]
    code = "print((4350 - 3_975) / 3975 * 100, 12.5, 100, 2)"
    assert operand_labels(code, passages) == {"4350": [1, 4], "3_975": [2], "3975": [2], "12.5": [2]}


def test_numbers_found_nowhere_and_small_whole_numbers_are_left_out() -> None:
    passages = [passage("Costs were 10 and 7,000.", 1)]
    assert operand_labels("x = 7000 * 10 + 123456\nprint(x)", passages) == {"7000": [1]}
