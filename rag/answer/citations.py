"""Citations are data: parse `[n]` keys out of an answer; a Citation ties one to its passage, file and page
(`rag.answer.grounding` makes them, with the supporting quote)."""

from __future__ import annotations

import re

# [1]  [1, 2]  [1][2]  and gpt-oss's own 【1】 / 【1†L3-L5】
_BRACKETS = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_LENTICULAR = re.compile(r"【(\d+)(?:†[^】]*)?】")

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

def strip_citations(text: str) -> str:
    """The text without its citation marks (and the space before each): "Up 5% [1]." -> "Up 5%."."""
    return re.sub(r"\s*(?:" + _BRACKETS.pattern + "|" + _LENTICULAR.pattern + ")", "", text).strip()
