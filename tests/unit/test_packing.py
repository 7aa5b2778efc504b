"""Quick mode's packing (rag/answer/packing.py): the pure core with hand-made pieces, the shell with an in-memory
index."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ingest.chunk import chunk_blocks
from ingest.document import Block
from rag.answer.packing import Piece, follows, join_text, merged_hit, pack, pack_prompt
from rag.index.catalog import Catalog
from rag.index.index import FileFacts, Index, NewChunk
from rag.llm.tokens import count_rendered
from rag.records import Hit
from rag.settings import ChunkingSettings, load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def piece(rank: int, document: str, ordinal: int, text: str = "", page: int = 1, similarity: float | None = 0.6,
          headings: tuple[str, ...] = ()) -> Piece:
    hit = Hit(rank=rank, score=1.0 / rank, path=f"/lib/{document}.pdf", page_start=page, page_end=page,
              chunk_id=f"{document}-{ordinal}", text=text or f"Text of {document} chunk {ordinal}.",
              headings=headings, similarity=similarity)
    return Piece(hit, document, ordinal)


def words(count: int, tag: str) -> str:
    """`count` distinct words: no two texts share an overlap by chance."""
    return " ".join(f"{tag}{n}" for n in range(count))


def cost(hit: Hit) -> int:
    """One token a word: easy to reason about in a test."""
    return len(hit.text.split())


def test_merging_consecutive_chunks_gives_back_the_text_without_the_overlap() -> None:
    paragraphs = [" ".join(f"{WORDS[(n + i) % len(WORDS)]}{n}." if i % 9 == 8 else WORDS[(n + i) % len(WORDS)]
                           for i in range(40)) for n in range(12)]
    chunks = chunk_blocks([Block(p) for p in paragraphs], lambda text: len(text.split()),
                          ChunkingSettings(tokens=64, overlap_tokens=16))
    assert len(chunks) > 4
    assert any(chunks[i].text.split("\n\n")[0] in chunks[i - 1].text for i in range(1, len(chunks)))  # overlap
    pieces = [piece(i + 1, "doc", i, chunk.text) for i, chunk in enumerate(chunks)]
    assert merged_hit(pieces).text == "\n\n".join(paragraphs)


def test_joining_without_an_overlap_keeps_both_texts_whole() -> None:
    assert join_text("First paragraph ends here.", "Second one starts.") == \
        "First paragraph ends here.\n\nSecond one starts."
    # A coincidence shorter than a sentence, or one not at a word boundary, is not an overlap.
    assert join_text("It ends with the", "the start") == "It ends with the\n\nthe start"
    assert join_text("A sentence that repeats.", "A sentence that repeats. And more.") == \
        "A sentence that repeats. And more."
    assert join_text("bigA sentence that repeats.", "A sentence that repeats. More.").count("repeats") == 2


def test_neighbours_are_consecutive_chunks_on_one_page_or_in_one_section() -> None:
    assert follows(piece(1, "a", 3), piece(2, "a", 4))
    assert not follows(piece(1, "a", 3), piece(2, "a", 5))  # not next to each other
    assert not follows(piece(1, "a", 3), piece(2, "b", 4))  # another document
    assert not follows(piece(1, "a", 3, page=1), piece(2, "a", 4, page=2))  # a page break, no section
    section = ("Notes", "Leases")
    assert follows(piece(1, "a", 3, page=1, headings=section), piece(2, "a", 4, page=2, headings=section))
    assert not follows(piece(1, "a", 3, headings=section), piece(2, "a", 4, headings=("Notes", "Debt")))


def test_a_merged_passage_takes_its_best_rank_its_first_chunk_id_and_all_its_pages() -> None:
    first, second = piece(5, "a", 1, "One two three.", page=4), piece(2, "a", 2, "Four five.", page=4)
    [passage] = pack([first, second], 100, cost, document_budget=100, min_relevance=0.4)
    assert passage.chunk_id == "a-1" and passage.rank == 1 and passage.text == "One two three.\n\nFour five."
    spread = pack([piece(1, "a", 1, "x y", page=4, headings=("S",)), piece(2, "a", 2, "z", page=5, headings=("S",))],
                  100, cost, document_budget=100, min_relevance=0.4)
    assert [(p.page_start, p.page_end) for p in spread] == [(4, 5)]


def test_passages_fill_the_budget_and_are_numbered_by_their_best_chunk() -> None:
    pieces = [piece(1, "a", 10, words(30, "w1x")), piece(2, "b", 1, words(30, "w2x")),
              piece(3, "a", 11, words(30, "w3x")), piece(4, "c", 7, words(60, "w4x")),
              piece(5, "d", 2, words(20, "w5x"))]
    passages = pack(pieces, 95, cost, document_budget=1000, min_relevance=0.4)
    # a's two chunks merge (60), b (30) fits, c (60) does not, the shorter d (20) no longer fits either (95).
    assert [(p.rank, p.chunk_id) for p in passages] == [(1, "a-10"), (2, "b-1")]
    assert sum(cost(p) for p in passages) <= 95
    without_merging = pack(pieces, 95, cost, document_budget=1000, min_relevance=0.4, merge=False)
    assert [p.chunk_id for p in without_merging] == ["a-10", "b-1", "a-11"]


def test_one_document_fills_its_share_before_the_others_then_the_rest() -> None:
    long = [piece(rank, "long", rank, words(10, "w6x")) for rank in range(1, 7)]  # six chunks, not neighbours (pages)
    long = [replace(p, hit=replace(p.hit, page_start=p.ordinal, page_end=p.ordinal)) for p in long]
    other = piece(7, "other", 1, words(10, "w7x"))
    passages = pack([*long, other], 60, cost, document_budget=30, min_relevance=0.4)
    assert [p.chunk_id for p in passages] == ["long-1", "long-2", "long-3", "long-4", "long-5", "other-1"]
    # A document the question names has no share limit.
    named = pack([*long, other], 60, cost, document_budget=30, min_relevance=0.4, uncapped=frozenset({"long"}))
    assert "other-1" not in [p.chunk_id for p in named]


def test_an_unrelated_document_never_takes_the_place_of_a_relevant_one() -> None:
    # The case: a relevant article's further chunks lost their places to unrelated files (0.17-0.19).
    article = [piece(rank, "article", rank * 2, words(10, f"a{rank}x"), similarity=0.5) for rank in (1, 2, 3, 5, 7)]
    unrelated = [piece(4, "garden", 1, words(10, "g"), similarity=0.19),
                 piece(6, "recipes", 1, words(5, "r"), similarity=0.17)]
    passages = pack([*article, *unrelated], 45, cost, document_budget=20, min_relevance=0.41)
    # The article's share (20) gives way to relevance; the last article chunk does not fit, and the recipe that
    # would fit in what is left is not read instead.
    assert [p.chunk_id for p in passages] == ["article-2", "article-4", "article-6", "article-10"]
    # When every relevant passage is in, what room is left goes to the rest.
    roomy = pack([*article, *unrelated], 100, cost, document_budget=20, min_relevance=0.41)
    assert len(roomy) == 7
    # With the check off (min_relevance 0), every document counts as relevant: the share applies.
    shared = pack([*article, *unrelated], 45, cost, document_budget=20, min_relevance=0.0)
    assert "garden-1" in [p.chunk_id for p in shared]


def test_a_top_hits_neighbours_are_read_with_it_never_without_it() -> None:
    hit, before = piece(1, "a", 5, words(10, "w12x")), piece(1, "a", 4, words(10, "b13x"))
    after = piece(1, "a", 6, words(10, "c14x"))
    rest = piece(2, "b", 1, words(10, "w15x"))
    passages = pack([hit, rest], 40, cost, document_budget=100, min_relevance=0.4,
                    neighbours={"a-5": [before, after]})
    assert [(p.chunk_id, len(p.text.split())) for p in passages] == [("a-4", 30), ("b-1", 10)]
    # The hit does not fit: its neighbours are not read instead.
    alone = pack([piece(1, "a", 5, words(50, "w16x")), rest], 40, cost, document_budget=100, min_relevance=0.4,
                 neighbours={"a-5": [before, after]})
    assert [p.chunk_id for p in alone] == ["b-1"]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    sentences = [f"Quinces ripen in October, note {n}. Medlars need frost before eating, note {n}." for n in range(40)]
    index.write_document(FileFacts("/lib/garden.md", "g", 1, 1), "markdown", 1,
                         [NewChunk(text, n // 2 + 1, n // 2 + 1) for n, text in enumerate(sentences)])
    return index


def test_the_prompt_fits_the_share_of_the_window_with_exact_counts(index: Index) -> None:
    from rag.answer.packing import gather

    settings = load_settings(min_relevance=0.0, context={"share": 0.1})
    hits = gather(index, "When do quinces ripen?", settings)
    prompt = pack_prompt("When do quinces ripen?", "When do quinces ripen?", hits, index, settings, 4096)
    assert 1 < len(prompt.passages) < len(hits)
    assert sum(count_rendered(p.text) for p in prompt.passages) <= 0.1 * settings.num_ctx
    assert count_rendered(prompt.text) <= prompt.estimated_tokens <= prompt.budget_tokens
    assert not prompt.notices
    # Two chunks a page: neighbours on one page are merged into one passage.
    assert any(p.text.count("Quinces") > 1 for p in prompt.passages)


def test_a_window_too_small_for_the_share_says_so(index: Index) -> None:
    from rag.answer.packing import gather

    settings = load_settings(min_relevance=0.0, num_ctx=2048, context={"share": 0.9})
    hits = gather(index, "When do quinces ripen?", settings)
    prompt = pack_prompt("When do quinces ripen?", "When do quinces ripen?", hits, index, settings, 1024)
    assert prompt.passages and count_rendered(prompt.text) <= prompt.budget_tokens
    [notice] = prompt.notices
    assert "ARCHIVIST_NUM_CTX=2,048" in notice


def test_other_models_keep_the_safe_estimate(index: Index) -> None:
    from rag.answer.packing import gather

    gpt = load_settings(min_relevance=0.0, context={"share": 0.03})
    other = gpt.model_copy(update={"model": "smollm2:135m"})
    question = "When do quinces ripen?"
    exact = pack_prompt(question, question, gather(index, question, gpt), index, gpt, 4096)
    safe = pack_prompt(question, question, gather(index, question, other), index, other, 4096)
    assert safe.estimated_tokens > count_rendered(safe.text)
    assert sum(len(p.text) for p in safe.passages) < sum(len(p.text) for p in exact.passages)


