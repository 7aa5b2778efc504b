"""Scoring FinanceBench answers: gold numbers as FinanceBench writes them, numbers as models write them."""

from __future__ import annotations

import pytest

from evaluation.answers import answer_numbers, gold_number, numerically_correct, summarise


@pytest.mark.parametrize(("gold", "value"), [
    ("$1577.00", 1577.0), ("24.26%", 24.26), ("0.66", 0.66), ("$8.70", 8.7), ("-$3.2 billion", -3.2),
    ("1,234", 1234.0), ("65.4 million", 65.4), ("2.1x", 2.1),
    ("36%. The answer here assumes FY2023 refers to the 12 months ended on January 28, 2023.", 36.0),
])
def test_gold_answers_that_are_one_number(gold: str, value: float) -> None:
    assert gold_number(gold) == pytest.approx(value)


@pytest.mark.parametrize("gold", [
    "Yes, because its quick ratio is above 1.", "AMD's revenue grew in 2022 and 2023", "",
    "The company has 3 segments: A, B and C.",
])
def test_free_text_gold_answers_are_not_numeric(gold: str) -> None:
    assert gold_number(gold) is None


def test_numbers_in_an_answer_skip_citation_marks_and_read_accounting_negatives() -> None:
    assert answer_numbers("Capital expenditure was $1,577 million [3] in FY2018 [4].") == [1577.0]  # FY2018 is a name
    assert answer_numbers("Net cash used was (1,234) million.") == [-1234.0]


@pytest.mark.parametrize(("gold", "answer", "correct"), [
    (1577.0, "3M spent $1,577 million on PP&E in FY2018 [1].", True),
    (1577.0, "About $1.59 billion [1].", False),  # 1590 is off by 0.8% only in millions; 1.59 is not 1577
    (1577.0, "It spent $1,590 million [1].", True),  # within 1%
    (1577.0, "It spent $1,600 million [1].", False),  # 1.5% off
    (24.26, "The margin was 0.2426 [2].", True),  # a share as a fraction
    (24.26, "The margin was 24.3% [2].", True),
    (0.66, "The ratio is 0.66 [1].", True),
    (-3.2, "It fell by 3.2 billion [1].", True),  # the sign in words
])
def test_numeric_answers_are_correct_within_one_percent(gold: float, answer: str, correct: bool) -> None:
    assert numerically_correct(gold, answer) is correct


def test_the_summary_counts_only_answered_questions() -> None:
    rows = [
        {"numeric": True, "correct": True, "refused": False, "error": "", "tool_calls": 3, "supported_share": 1.0,
         "seconds": 2.0},
        {"numeric": True, "correct": False, "refused": True, "error": "", "tool_calls": 1, "supported_share": None,
         "seconds": 4.0},
        {"numeric": False, "correct": None, "refused": False, "error": "", "tool_calls": 0, "supported_share": 0.5,
         "seconds": 6.0},
        {"numeric": True, "correct": None, "refused": None, "error": "server down", "tool_calls": 0,
         "supported_share": None, "seconds": 0.1},
    ]
    summary = summarise(rows, "research")
    assert summary["questions"] == 4 and summary["errors"] == 1
    assert summary["numeric_questions"] == 2 and summary["numeric_correct"] == 0.5
    assert summary["refusals"] == pytest.approx(1 / 3, abs=1e-4)
    assert summary["tool_calls_per_question"] == pytest.approx(1.33)
    assert summary["supported_share"] == 0.75
    assert summary["seconds_per_answer"] == {"mean": 4.0, "p50": 4.0}
