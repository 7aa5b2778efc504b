"""Citations are data: parse `[n]` keys out of an answer and tie each to its passage, file and page."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rag.retrieve import Hit
from rag.sentences import split_sentences

# [1]  [1, 2]  [1][2]  and gpt-oss's own 【1】 / 【1†L3-L5】
_BRACKETS = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LENTICULAR = re.compile(r"【(\d+)(?:†[^】]*)?】")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were which with"
    .split()
)


@dataclass(frozen=True)
class Citation:
    n: int
    path: str
    page_start: int
    page_end: int
    chunk_id: str
    quote: str  # the sentence of the passage that best supports what cites it

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def citation_numbers(text: str) -> list[int]:
    """Every cited number in order of first appearance (unvalidated)."""
    found: list[tuple[int, int]] = []
    for match in _BRACKETS.finditer(text):
        found.extend((match.start(), int(n)) for n in re.split(r"\s*[,;]\s*", match.group(1)))
    found.extend((match.start(), int(match.group(1))) for match in _LENTICULAR.finditer(text))
    found.sort(key=lambda pair: pair[0])
    return list(dict.fromkeys(n for _, n in found))


def valid_numbers(text: str, source_count: int) -> list[int]:
    """Cited numbers that name a real source; others are dropped."""
    return [n for n in citation_numbers(text) if 1 <= n <= source_count]


def _words(text: str) -> set[str]:
    return {word for word in (w.lower() for w in _WORD.findall(text)) if word not in _STOP_WORDS}


def best_quote(claim: str, passage: str) -> str:
    """The sentence of `passage` sharing the most words with `claim` (the passage's first one on a tie)."""
    sentences = split_sentences(passage)
    if not sentences:
        return passage.strip()
    claim_words = _words(claim)
    best = max(sentences, key=lambda s: len(claim_words & _words(s.text)) / (1 + len(_words(s.text))) ** 0.5)
    return best.text


def resolve_citations(answer: str, passages: Sequence[Hit]) -> list[Citation]:
    """One Citation per valid number, in order of first use, quoting what supports the citing sentences."""
    claims: dict[int, list[str]] = {}
    for sentence in split_sentences(answer):
        for n in valid_numbers(sentence.text, len(passages)):
            claims.setdefault(n, []).append(strip_citations(sentence.text))
    citations = []
    for n in valid_numbers(answer, len(passages)):
        hit = passages[n - 1]
        claim = " ".join(claims.get(n, [answer]))
        citations.append(
            Citation(n=n, path=hit.path, page_start=hit.page_start, page_end=hit.page_end,
                     chunk_id=hit.chunk_id, quote=best_quote(claim, hit.text))
        )
    return citations


def strip_citations(text: str) -> str:
    return _LENTICULAR.sub("", _BRACKETS.sub("", text)).strip()
