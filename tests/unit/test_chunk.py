from __future__ import annotations

import itertools

from ingest.chunk import chunk_blocks
from ingest.document import Block


def words(text: str) -> int:
    return len(text.split())


def paragraph(n: int, length: int = 30) -> str:
    return " ".join(f"p{n}w{i}" for i in range(length - 1)) + " end."


def test_small_document_is_one_chunk_with_its_pages() -> None:
    blocks = [Block("Alpha beta.", page=1), Block("Gamma delta.", page=2)]
    chunks = chunk_blocks(blocks, words, max_tokens=50, overlap_tokens=0)
    assert len(chunks) == 1
    assert chunks[0].text == "Alpha beta.\n\nGamma delta."
    assert (chunks[0].page_start, chunks[0].page_end) == (1, 2)


def test_chunks_respect_the_token_limit_and_keep_every_word() -> None:
    blocks = [Block(paragraph(n), page=n // 3 + 1) for n in range(12)]
    chunks = chunk_blocks(blocks, words, max_tokens=100, overlap_tokens=0)
    assert len(chunks) > 1
    assert all(words(chunk.text) <= 100 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks).split() == " ".join(b.text for b in blocks).split()


def test_a_long_paragraph_is_cut_at_sentences_then_words() -> None:
    sentence = " ".join(["word"] * 20) + "."
    long_paragraph = " ".join([sentence] * 10)  # 200 words, 10 sentences
    giant_sentence = " ".join(["x"] * 130) + "."
    chunks = chunk_blocks([Block(long_paragraph), Block(giant_sentence)], words, max_tokens=64, overlap_tokens=0)
    assert all(words(chunk.text) <= 64 for chunk in chunks)
    assert sum(words(chunk.text) for chunk in chunks) == 200 + 130


def test_each_section_starts_a_new_chunk_with_its_heading_path() -> None:
    blocks = [
        Block("Intro text.", headings=("Guide",)),
        Block("Install with pip.", headings=("Guide", "Install")),
        Block("Run it.", headings=("Guide", "Usage")),
    ]
    chunks = chunk_blocks(blocks, words, max_tokens=100, overlap_tokens=0)
    assert [chunk.headings for chunk in chunks] == [("Guide",), ("Guide", "Install"), ("Guide", "Usage")]
    assert chunks[1].embedding_text == "Guide > Install\nInstall with pip."


def test_overlap_repeats_the_last_sentence_of_the_previous_chunk() -> None:
    blocks = [Block(f"Sentence {i} has five words." * 1, page=1) for i in range(30)]
    chunks = chunk_blocks(blocks, words, max_tokens=40, overlap_tokens=8)
    assert len(chunks) > 2
    for previous, current in itertools.pairwise(chunks):
        last_sentence = previous.text.split("\n\n")[-1]
        assert current.text.startswith(last_sentence)


def test_an_edit_only_changes_the_chunks_of_its_section() -> None:
    sections = [(f"S{s}",) for s in range(5)]
    blocks = [Block(paragraph(10 * s + i), headings=h) for s, h in enumerate(sections) for i in range(4)]
    before = chunk_blocks(blocks, words, max_tokens=80, overlap_tokens=10)
    edited = list(blocks)
    edited[9] = Block(edited[9].text.replace("end.", "changed end."), headings=edited[9].headings)
    after = chunk_blocks(edited, words, max_tokens=80, overlap_tokens=10)
    changed = {c.text for c in after} - {c.text for c in before}
    assert 1 <= len(changed) <= 2
    assert all(c.headings == ("S2",) for c in after if c.text in changed)


def test_empty_blocks_make_no_chunks() -> None:
    assert chunk_blocks([Block("   "), Block("")], words) == []


def test_pdf_chunks_never_cross_a_page_break() -> None:
    blocks = [Block("Cover.", page=1), Block("Body text.", page=2), Block("More body.", page=2)]
    chunks = chunk_blocks(blocks, words, max_tokens=100, overlap_tokens=10, split_pages=True)
    assert [(c.text, c.page_start, c.page_end) for c in chunks] == [
        ("Cover.", 1, 1),
        ("Body text.\n\nMore body.", 2, 2),
    ]
