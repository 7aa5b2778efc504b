"""Splitting text into sentences, keeping each sentence's position in the original text."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets or a citation like [2]) and then
# white space; common abbreviations and decimals do not end one.
_END = re.compile(r"""[.!?。！？]["'”’)\]]*(?:\s*(?:\[\d+(?:\s*,\s*\d+)*\]|【[^】]*】))*(?=\s+|$)""")
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al fig figs eq eqs no nos p pp vol dr mr mrs ms prof inc ltd co corp jr sr st approx".split()
)


@dataclass(frozen=True)
class Sentence:
    text: str
    start: int  # offset of the first character in the source text
    end: int  # offset just past the last character


def _is_abbreviation(text: str, dot: int) -> bool:
    word_start = dot
    while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "."):
        word_start -= 1
    word = text[word_start:dot].lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def split_sentences(text: str) -> list[Sentence]:
    """Sentences in order; a blank line always ends one, so headings and list items stand alone."""
    sentences: list[Sentence] = []
    for paragraph in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]*)*", text):
        start = paragraph.start()
        body = paragraph.group()
        cursor = 0
        for match in _END.finditer(body):
            if body[match.start()] == "." and _is_abbreviation(body, match.start()):
                continue
            _append(sentences, text, start + cursor, start + match.end())
            cursor = match.end()
        _append(sentences, text, start + cursor, start + len(body))
    return sentences


def _append(sentences: list[Sentence], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        sentences.append(Sentence(text[start:end], start, end))
