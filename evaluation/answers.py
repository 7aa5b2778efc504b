"""Answers end to end: every FinanceBench question through `ask` against the configured LLM, scored.

A numeric gold answer (`$1577.00`, `24.26%`, `0.66`, `-$3.2 billion`) counts as correct when a number in the
answer is within 1% of it (relative); the others are listed for reading, since judging free text takes a
person or a judge model. Per run: the share correct among numeric questions, refusals ("not in your
documents", or nothing relevant found), tool calls per question, the share of answer sentences supported by
what they cite, and the time per answer. This is the command a person with gpt-oss runs to compare quick and
research mode on their machine; with a small model it checks the plumbing, not the accuracy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from evaluation.cache import ProgressFactory, sink
from evaluation.financebench import FinanceBenchEvaluation
from evaluation.metrics import mean, percentile
from evaluation.record import run_record
from rag.answer.ask import Answer, Finished, Mode, ask
from rag.answer.citations import strip_citations
from rag.answer.prompt import NOT_IN_DOCUMENTS
from rag.errors import LLMError
from rag.index.index import Index
from rag.llm.chat import ChatModel
from rag.settings import Settings

RELATIVE_TOLERANCE = 0.01
# A gold answer that is one number: optional sign and currency, the digits, an optional percent or scale word.
_GOLD_NUMBER = re.compile(
    r"^\s*(?P<sign>-)?\s*\$?\s*(?P<sign2>-)?\s*(?P<number>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>%|percent)?"
    r"(?:\s*(?:usd|dollars|million|millions|billion|billions|thousand|thousands|x|times))?\s*\.?\s*$",
    re.IGNORECASE,
)
_ANSWER_NUMBER = re.compile(r"(?<![\w.])-?\(?\$?\s?\d[\d,]*(?:\.\d+)?\)?")


def gold_number(answer: str) -> float | None:
    """The gold answer's value when it is a single number (percent kept as written: 24.26% is 24.26), alone or
    as the first sentence of an explained answer ("36%. The answer here assumes FY2023 refers to …")."""
    text = answer.replace("−", "-")
    match = _GOLD_NUMBER.match(text) or _GOLD_NUMBER.match(re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)[0])
    if match is None:
        return None
    value = float(match.group("number").replace(",", ""))
    return -value if match.group("sign") or match.group("sign2") else value


def answer_numbers(text: str) -> list[float]:
    """Every number written in an answer (citation marks removed; "(1,234)" read as negative, as accounts
    write it)."""
    numbers = []
    for match in _ANSWER_NUMBER.finditer(strip_citations(text).replace("−", "-")):
        raw = match.group()
        negative = raw.startswith("-") or (raw.startswith("(") and raw.endswith(")"))
        digits = re.sub(r"[^\d.]", "", raw)
        try:
            value = float(digits)
        except ValueError:
            continue
        numbers.append(-value if negative else value)
    return numbers


def numerically_correct(gold: float, answer: str) -> bool:
    """A number in the answer within 1% of the gold value; a share may be written as a fraction or a percent
    (0.2426 for 24.26%), and a sign dropped for a decrease described in words."""
    for value in answer_numbers(answer):
        for candidate in (value, value * 100, value / 100, -value):
            if gold == 0 and candidate == 0:
                return True
            if gold != 0 and abs(candidate - gold) <= RELATIVE_TOLERANCE * abs(gold):
                return True
    return False


def _refused(answer: Answer) -> bool:
    return not answer.found_relevant or NOT_IN_DOCUMENTS in answer.answer


def _supported_share(answer: Answer) -> float | None:
    if not answer.sentences:
        return None
    return sum(sentence.status == "supported" for sentence in answer.sentences) / len(answer.sentences)


def eval_answers(
    folder: Path,
    settings: Settings,
    make_chat: Callable[[Settings], ChatModel],
    mode: Mode = "research",
    limit: int | None = None,
    data_dir: Path | None = None,
    progress: ProgressFactory | None = None,
    rename: bool = False,
) -> dict[str, object]:
    """Ask the first `limit` FinanceBench questions (all when None) whose filings are in `folder`."""
    chat = make_chat(settings)
    try:
        chat.check()
        with FinanceBenchEvaluation(folder, settings, data_dir, progress, rename) as evaluation:
            index = evaluation.opened_index()
            questions = evaluation.questions[:limit] if limit else evaluation.questions
            bar = sink(progress, len(questions), "Answering")
            rows = []
            for question in questions:
                rows.append(_answer_one(question, index, chat, settings, mode))
                bar.advance()
            bar.close()
            facts = evaluation.index_facts()
    finally:
        chat.close()
    return summarise(rows, mode) | facts | run_record(settings, mode=mode) | {"model": settings.model}


def _answer_one(question: dict[str, object], index: Index, chat: ChatModel, settings: Settings,
                mode: Mode) -> dict[str, object]:
    started = time.perf_counter()
    answer: Answer | None = None
    error = ""
    try:
        for event in ask(str(question["question"]), index, chat, settings, mode=mode):
            if isinstance(event, Finished):
                answer = event.answer
    except LLMError as failure:
        error = str(failure)
    seconds = time.perf_counter() - started
    gold = str(question.get("answer") or "")
    value = gold_number(gold)
    text = answer.answer if answer else ""
    return {
        "id": question.get("financebench_id"), "question": question["question"], "gold": gold,
        "answer": text, "numeric": value is not None,
        "correct": numerically_correct(value, text) if value is not None and answer else None,
        "refused": _refused(answer) if answer else None, "error": error,
        "tool_calls": len(answer.steps) if answer else 0, "mode": answer.mode if answer else mode,
        "supported_share": _supported_share(answer) if answer else None, "seconds": round(seconds, 2),
        "notices": answer.notices if answer else [],
    }


def summarise(rows: Sequence[dict[str, object]], mode: Mode) -> dict[str, object]:
    """The run's figures from its rows (kept in the result, for reading the non-numeric answers)."""
    numeric = [row for row in rows if row["numeric"] and not row["error"]]
    answered = [row for row in rows if not row["error"]]
    shares = [float(share) for row in answered if isinstance(share := row["supported_share"], float)]
    seconds = [float(str(row["seconds"])) for row in answered]
    return {
        "questions": len(rows),
        "mode": mode,
        "errors": sum(bool(row["error"]) for row in rows),
        "numeric_questions": len(numeric),
        "numeric_correct": round(mean([float(bool(row["correct"])) for row in numeric]), 4) if numeric else None,
        "refusals": round(mean([float(bool(row["refused"])) for row in answered]), 4) if answered else None,
        "tool_calls_per_question": round(mean([float(str(row["tool_calls"])) for row in answered]), 2)
        if answered else None,
        "supported_share": round(mean(shares), 4) if shares else None,
        "seconds_per_answer": {"mean": round(mean(seconds), 2), "p50": round(percentile(seconds, 0.5), 2)}
        if seconds else None,
        "answers": list(rows),
    }
