"""Checking an answer sentence by sentence: what each cites, and the sentence of the sources that supports it.

A sentence with citations is `supported` when the best sentence of its cited passages scores at least the
scorer's threshold (`settings.support.threshold`), else `unsupported`; a sentence without citations is
`uncited`, and gets the best supporting sentence among all the sources in the prompt as a suggestion. Quotes
carry their offsets in the chunk text, so a face can highlight them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from rag.answer.citations import strip_citations, valid_numbers
from rag.answer.sentences import split_sentences
from rag.answer.support import SupportMatch, SupportScorer
from rag.records import Citation, Hit

Status = Literal["supported", "unsupported", "uncited"]


@dataclass(frozen=True)
class Support:
    """The sentence of source `n` that best supports an answer sentence."""

    n: int
    chunk_id: str
    quote: str
    quote_start: int  # offsets in the chunk's text: text[quote_start:quote_end] == quote
    quote_end: int
    score: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    cited: list[int]  # valid source numbers, in order of appearance
    status: Status
    support: Support | None  # for an uncited sentence: the best suggestion among all sources

    def to_json(self) -> dict[str, object]:
        return {"text": self.text, "cited": self.cited, "status": self.status,
                "support": self.support.to_json() if self.support else None}


def _support(match: SupportMatch, numbers: Sequence[int], passages: Sequence[Hit]) -> Support:
    n = numbers[match.passage_index]
    return Support(n=n, chunk_id=passages[n - 1].chunk_id, quote=match.text, quote_start=match.start,
                   quote_end=match.end, score=round(match.score, 4))


def ground_sentences(
    answer: str, passages: Sequence[Hit], scorer: SupportScorer, ignore: Sequence[str] = ()
) -> list[AnswerSentence]:
    """Every sentence of `answer` with its citations, status and support (sentences in `ignore`, like the
    fixed "not in your documents" reply, are not claims and are left out)."""
    result: list[AnswerSentence] = []
    for sentence in split_sentences(answer):
        claim = strip_citations(sentence.text)
        if not any(character.isalnum() for character in claim) or claim in ignore:
            continue
        cited = valid_numbers(sentence.text, len(passages))
        numbers = cited or list(range(1, len(passages) + 1))
        matches = scorer.rank(claim, [passages[n - 1].text for n in numbers], top=1) if numbers else []
        support = _support(matches[0], numbers, passages) if matches else None
        if not cited:
            status: Status = "uncited"
        elif support is not None and support.score >= scorer.tuning.threshold:
            status = "supported"
        else:
            status = "unsupported"
        result.append(AnswerSentence(sentence.text, cited, status, support))
    return result


def citations_for(
    sentences: Sequence[AnswerSentence], passages: Sequence[Hit], scorer: SupportScorer
) -> list[Citation]:
    """One Citation per source cited, in order of first use, quoting the sentence of that source that best
    supports the answer sentences citing it."""
    claims: dict[int, list[str]] = {}
    for sentence in sentences:
        for n in sentence.cited:
            claims.setdefault(n, []).append(strip_citations(sentence.text))
    citations = []
    for n, texts in claims.items():
        hit = passages[n - 1]
        matches = scorer.rank(" ".join(texts), [hit.text], top=1)
        best = matches[0] if matches else None
        citations.append(Citation(
            n=n, path=hit.path, page_start=hit.page_start, page_end=hit.page_end, chunk_id=hit.chunk_id,
            quote=best.text if best else hit.text.strip(), quote_start=best.start if best else 0,
            quote_end=best.end if best else len(hit.text),
        ))
    return citations
