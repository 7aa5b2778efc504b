"""Cutting a parsed document into chunks sized in the embedding model's tokens.

Chunks are packed from whole paragraphs (blocks); a paragraph too long for one chunk is cut at sentence
boundaries, and a sentence too long at word boundaries. A new section (heading path) always starts a new
chunk, and so does a new page of a PDF, so an edit in one section or page never moves the boundaries of
another. Consecutive chunks of a section
share a small overlap of whole sentences, so a fact split across a boundary is still found. The sizes and the
content-defined boundaries are tuned by the settings' `chunking` section (rag/settings.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ingest.document import Block
from rag.answer.sentences import split_sentences
from rag.index.index import NewChunk
from rag.settings import ChunkingSettings

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class _Piece:
    """A unit the packer never splits: a paragraph, or a sentence or word run of a long one."""

    text: str
    page: int
    tokens: int
    paragraph_start: bool  # first piece of its paragraph: joined with a blank line, not a space


def _split_long(text: str, limit: int, count: TokenCounter) -> list[str]:
    """Cut text that exceeds `limit` tokens: at sentences, then at words."""
    parts: list[str] = []
    for piece in [sentence.text for sentence in split_sentences(text)] or [text]:
        if count(piece) <= limit:
            parts.append(piece)
            continue
        # Word by word, adding up each word's count: the model's tokenizer splits at whitespace before
        # anything else, so a run's count is the sum of its words' (and this stays linear in the length).
        words: list[str] = []
        run_tokens = 0
        for word in piece.split():
            tokens = count(word)
            if words and run_tokens + tokens > limit:
                parts.append(" ".join(words))
                words, run_tokens = [], 0
            words.append(word)
            run_tokens += tokens
        if words:
            parts.append(" ".join(words))
    return parts


def _pieces(blocks: Sequence[Block], limit: int, count: TokenCounter) -> list[_Piece]:
    pieces: list[_Piece] = []
    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        tokens = count(text)
        if tokens <= limit:
            pieces.append(_Piece(text, block.page, tokens, True))
            continue
        for position, part in enumerate(_split_long(text, limit, count)):
            pieces.append(_Piece(part, block.page, count(part), position == 0))
    return pieces


def _join(pieces: Iterable[_Piece]) -> str:
    out = ""
    for piece in pieces:
        if out:
            out += "\n\n" if piece.paragraph_start else " "
        out += piece.text
    return out


def _sections(blocks: Sequence[Block], split_pages: bool) -> list[tuple[tuple[str, ...], list[Block]]]:
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    for block in blocks:
        if (
            not sections
            or sections[-1][0] != block.headings
            or (split_pages and sections[-1][1][-1].page != block.page)
        ):
            sections.append((block.headings, []))
        sections[-1][1].append(block)
    return sections


def chunk_blocks(
    blocks: Sequence[Block],
    count_tokens: TokenCounter,
    tuning: ChunkingSettings | None = None,
    split_pages: bool = False,
    model_limit: int | None = None,
) -> list[NewChunk]:
    """Chunks in document order, each at most about `tuning.tokens` tokens (and `model_limit`, what the
    embedding model reads, when given), with page range and headings. `tuning` is the settings' `chunking`
    section (its defaults when None).

    With `split_pages` (PDFs) no chunk crosses a page break, so every citation names exactly one page and
    an edit on one page cannot change the chunks of another."""
    tuning = tuning or ChunkingSettings()
    max_tokens = tuning.tokens if model_limit is None else min(tuning.tokens, model_limit)
    if max_tokens < 8:
        raise ValueError("chunks must be allowed at least 8 tokens")
    overlap_tokens = min(tuning.overlap_tokens, max_tokens // 4)
    chunks: list[NewChunk] = []
    # Content-defined boundaries (see _is_anchor): once a chunk holds min_fill of the limit, about one piece in
    # anchor_one_in may start the next one.
    min_tokens = int(max_tokens * tuning.min_fill)
    for headings, section in _sections(blocks, split_pages):
        pieces = _pieces(section, max_tokens - overlap_tokens, count_tokens)
        current: list[_Piece] = []
        own = 0  # tokens of the chunk's own pieces, not counting those repeated from the previous chunk
        for piece in pieces:
            # Room is judged on the chunk's own text, leaving space for any overlap: were the overlap to
            # count, every boundary would depend on the chunk before, and edits would ripple on.
            full = own + piece.tokens > max_tokens - overlap_tokens
            if own and (full or (own >= min_tokens and _is_anchor(piece, tuning.anchor_one_in))):
                chunks.append(_make(current, headings))
                current = _overlap(current, overlap_tokens)
                own = 0
            current.append(piece)
            own += piece.tokens
        if own:
            chunks.append(_make(current, headings))
    return chunks


def _is_anchor(piece: _Piece, one_in: int) -> bool:
    """Whether a chunk may start at this piece (about one in `one_in`), decided by its own text alone.

    Packing greedily to the size limit would make every boundary depend on all the text before it, so
    one inserted sentence would shift every later chunk and re-embed the rest of the document. Cutting
    where the content says (once a chunk is about a third full) lets the boundaries after an edit fall back onto
    the same pieces as before within a chunk or two: content-defined chunking, as in rsync or restic.
    """
    digest = hashlib.blake2b(piece.text.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "little") % one_in == 0


def _overlap(previous: list[_Piece], overlap_tokens: int) -> list[_Piece]:
    """The last whole sentences of the previous chunk, up to `overlap_tokens`, to lead the next one."""
    if overlap_tokens <= 0 or not previous:
        return []
    tail = previous[-1]
    kept: list[_Piece] = []
    size = 0
    for sentence in reversed(split_sentences(tail.text)):
        tokens = max(1, round(tail.tokens * len(sentence.text) / max(len(tail.text), 1)))
        if size + tokens > overlap_tokens:
            break
        kept.insert(0, _Piece(sentence.text, tail.page, tokens, not kept and tail.paragraph_start))
        size += tokens
    return [_Piece(p.text, p.page, p.tokens, i == 0) for i, p in enumerate(kept)]


def _make(pieces: list[_Piece], headings: tuple[str, ...]) -> NewChunk:
    return NewChunk(
        text=_join(pieces),
        page_start=min(p.page for p in pieces),
        page_end=max(p.page for p in pieces),
        headings=headings,
    )
