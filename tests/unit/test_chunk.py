from __future__ import annotations

import itertools
import random

from ingest.chunk import chunk_blocks
from ingest.document import Block
from rag.settings import ChunkingSettings


def words(text: str) -> int:
    return len(text.split())


def paragraph(n: int, length: int = 30) -> str:
    return " ".join(f"p{n}w{i}" for i in range(length - 1)) + " end."


def test_small_document_is_one_chunk_with_its_pages() -> None:
    blocks = [Block("Alpha beta.", page=1), Block("Gamma delta.", page=2)]
    chunks = chunk_blocks(blocks, words, ChunkingSettings(tokens=50, overlap_tokens=0))
    assert len(chunks) == 1
    assert chunks[0].text == "Alpha beta.\n\nGamma delta."
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 2)


def test_chunks_respect_the_token_limit_and_keep_every_word() -> None:
    blocks = [Block(paragraph(n), page=n // 3 + 1) for n in range(12)]
    chunks = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=0))
    assert len(chunks) > 1
    assert all(words(chunk.text) <= 100 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks).split() == " ".join(b.text for b in blocks).split()


def test_a_long_paragraph_is_cut_at_sentences_then_words() -> None:
    sentence = " ".join(["word"] * 20) + "."
    long_paragraph = " ".join([sentence] * 10)  # 200 words, 10 sentences
    giant_sentence = " ".join(["x"] * 130) + "."
    chunks = chunk_blocks([Block(long_paragraph), Block(giant_sentence)], words,
                          ChunkingSettings(tokens=64, overlap_tokens=0))
    assert all(words(chunk.text) <= 64 for chunk in chunks)
    assert sum(words(chunk.text) for chunk in chunks) == 200 + 130


def test_each_section_starts_a_new_chunk_with_its_heading_path() -> None:
    blocks = [
        Block("Intro text.", headings=("Guide",)),
        Block("Install with pip.", headings=("Guide", "Install")),
        Block("Run it.", headings=("Guide", "Usage")),
    ]
    chunks = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=0))
    assert [chunk.headings for chunk in chunks] == [("Guide",), ("Guide", "Install"), ("Guide", "Usage")]
    assert chunks[1].embedding_text == "Guide > Install\nInstall with pip."


def test_overlap_repeats_the_last_sentence_of_the_previous_chunk() -> None:
    blocks = [Block(f"Sentence {i} has five words." * 1, page=1) for i in range(30)]
    chunks = chunk_blocks(blocks, words, ChunkingSettings(tokens=40, overlap_tokens=8))
    assert len(chunks) > 2
    for previous, current in itertools.pairwise(chunks):
        last_sentence = previous.text.split("\n\n")[-1]
        assert current.text.startswith(last_sentence)


def test_an_edit_only_changes_the_chunks_of_its_section() -> None:
    sections = [(f"S{s}",) for s in range(5)]
    blocks = [Block(paragraph(10 * s + i), headings=h) for s, h in enumerate(sections) for i in range(4)]
    before = chunk_blocks(blocks, words, ChunkingSettings(tokens=80, overlap_tokens=10))
    edited = list(blocks)
    edited[9] = Block(edited[9].text.replace("end.", "changed end."), headings=edited[9].headings)
    after = chunk_blocks(edited, words, ChunkingSettings(tokens=80, overlap_tokens=10))
    changed = {c.text for c in after} - {c.text for c in before}
    assert 1 <= len(changed) <= 2
    assert all(c.headings == ("S2",) for c in after if c.text in changed)


def test_empty_blocks_make_no_chunks() -> None:
    assert chunk_blocks([Block("   "), Block("")], words) == []


def test_pdf_chunks_never_cross_a_page_break() -> None:
    blocks = [Block("Cover.", page=1), Block("Body text.", page=2), Block("More body.", page=2)]
    chunks = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=10), split_pages=True)
    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [
        ("Cover.", 1, 1),
        ("Body text.\n\nMore body.", 2, 2),
    ]


def varied_paragraphs(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(f"w{rng.randrange(10**6)}" for _ in range(rng.choice([8, 15, 25, 40, 60, 90]))) + "."
        for _ in range(count)
    ]


def test_edits_in_a_long_section_change_few_chunks() -> None:
    """Content-defined boundaries: after an edit, later chunks fall back onto the same boundaries.

    Greedy packing would change every chunk after the edit (hundreds here); anchoring keeps it to one to
    three in nearly every case (a rare unlucky run of pieces costs a few more)."""
    changed = []
    for seed in range(60):
        paragraphs = varied_paragraphs(seed, 600)  # about 100 pages in one section: the worst case
        before = chunk_blocks([Block(p) for p in paragraphs], words, ChunkingSettings(tokens=200, overlap_tokens=32))
        edited = list(paragraphs)
        position = random.Random(seed + 1).randrange(len(edited))
        if seed % 2:
            edited[position] = edited[position][:-1] + " and a few words more."
        else:
            edited.insert(position, "A new paragraph the user typed in the middle of the document.")
        after = chunk_blocks([Block(p) for p in edited], words, ChunkingSettings(tokens=200, overlap_tokens=32))
        assert all(words(chunk.text) <= 200 for chunk in after)
        changed.append(len({c.text for c in after} - {c.text for c in before}))
    assert min(changed) >= 1
    assert sorted(changed)[int(0.95 * len(changed))] <= 3
    assert sum(changed) / len(changed) <= 2


def test_the_content_defined_boundaries_follow_the_chunking_settings() -> None:
    paragraphs = [f"Paragraph {i} holds a few words of its own." for i in range(60)]
    blocks = [Block(p) for p in paragraphs]
    greedy = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=0, min_fill=1.0))
    every_piece = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=0, min_fill=0.0,
                                                               anchor_one_in=1))
    default = chunk_blocks(blocks, words, ChunkingSettings(tokens=100, overlap_tokens=0))
    # min_fill 1: only a full chunk ends one; anchor_one_in 1 with no minimum: every paragraph is its own chunk.
    assert all(words(chunk.text) > 100 - 10 for chunk in greedy[:-1])
    assert [chunk.text for chunk in every_piece] == paragraphs
    assert len(greedy) < len(default) < len(every_piece)
    assert chunk_blocks(blocks, words, model_limit=50) == chunk_blocks(
        blocks, words, ChunkingSettings(tokens=50)
    )  # the model's limit caps the size
