"""Hybrid retrieval on the in-memory fakes: fusion, the per-document cap, filters, and each arm alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rag.index.catalog import Catalog
from rag.index.index import FileFacts, Index, NewChunk
from rag.records import Filters
from rag.search.fusion import cap_per_group, convex_combination, reciprocal_rank_fusion
from rag.search.retrieve import RetrievalSettings, query_terms, search
from tests.fakes import HashingEmbedder, InMemoryVectorStore


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    assert [item for item, _ in fused] == ["a", "c", "b", "d"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_rrf_weights() -> None:
    fused = reciprocal_rank_fusion([["a"], ["b"]], k=1, weights=[1.0, 3.0])
    assert [item for item, _ in fused] == ["b", "a"]


def test_cap_per_group_keeps_order() -> None:
    items = [("a1", 5.0), ("a2", 4.0), ("b1", 3.0), ("a3", 2.0), ("b2", 1.0)]
    groups = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B"}
    assert [i for i, _ in cap_per_group(items, groups, cap=2)] == ["a1", "a2", "b1", "b2"]


def test_query_terms_drop_stop_words_but_never_everything() -> None:
    assert query_terms("What is the capital expenditure of 3M in 2018?") == ["capital", "expenditure", "3m", "2018"]
    assert query_terms("What is it?") == ["what", "is", "it"]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    documents = {
        "/lib/reports/3M_2018_10K.pdf": ("pdf", ["Capital expenditures were 1,577 million.", "Net sales grew."]),
        "/lib/reports/AMD_2015_10K.pdf": ("pdf", ["Capital expenditures were 96 million dollars.", "Revenue fell."]),
        "/lib/notes/garden.md": ("markdown", ["Quinces ripen in October.", "Medlars need frost."]),
        "/lib/notes/long.md": ("markdown", [f"Quince note number {n}." for n in range(10)]),
    }
    for path, (kind, texts) in documents.items():
        chunks = [NewChunk(text, page, page) for page, text in enumerate(texts, start=1)]
        index.write_document(FileFacts(path, path, 1, 1), kind, len(texts), chunks)
    return index


def test_lexical_uses_the_file_name(index: Index) -> None:
    hits = search(index, "3M capital expenditures", 2, mode="lexical")
    assert Path(hits[0].path).name == "3M_2018_10K.pdf" and hits[0].page_start == 1


def test_each_mode_ranks_best_first(index: Index) -> None:
    for mode in ("dense", "lexical", "hybrid"):
        hits = search(index, "When do quinces ripen?", 3, mode=mode)  # type: ignore[arg-type]
        assert hits[0].text == "Quinces ripen in October.", mode
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_one_long_document_cannot_crowd_out_the_rest(index: Index) -> None:
    hits = search(index, "quince note", 6, tuning=RetrievalSettings(per_document=2))
    paths = [Path(h.path).name for h in hits]
    assert paths.count("long.md") == 2 and "garden.md" in paths


def test_filters_by_folder_type_and_name(index: Index) -> None:
    in_notes = search(index, "capital expenditures quinces", 10, filters=Filters(folder="/lib/notes"))
    assert in_notes and all(h.path.startswith("/lib/notes/") for h in in_notes)
    pdfs = search(index, "capital expenditures quinces", 10, filters=Filters(kinds=("pdf",)))
    assert pdfs and all(h.path.endswith(".pdf") for h in pdfs)
    named = search(index, "capital expenditures", 10, filters=Filters(name_glob="*2015*"))
    assert {Path(h.path).name for h in named} == {"AMD_2015_10K.pdf"}
    assert search(index, "capital", 10, filters=Filters(folder="/lib/no")) == []  # a prefix is not a folder


def test_a_moved_file_is_found_by_its_new_name(index: Index) -> None:
    assert index.move_document("/lib/reports/AMD_2015_10K.pdf", FileFacts("/lib/reports/Renamed_Corp.pdf", "h", 1, 2))
    hits = search(index, "renamed corp", 1, mode="lexical")
    assert Path(hits[0].path).name == "Renamed_Corp.pdf"


def test_query_terms_add_the_spellings_file_names_use() -> None:
    # Letters and digits apart: "FY2018" also finds "2018" (one-letter parts are too common to help).
    assert query_terms("FY2018 capex for 3M")[-2:] == ["fy", "2018"]
    assert "3m" in query_terms("FY2018 capex for 3M") and "m" not in query_terms("FY2018 capex for 3M")
    # Names written as one word in file names: "Best Buy" finds BESTBUY_2019_10K.pdf.
    terms = query_terms("Did Best Buy or American Water Works, Inc. grow?")
    assert {"bestbuy", "americanwaterworks", "americanwater", "waterworks"} <= set(terms)
    assert "worksinc" not in terms  # a comma ends a name
    assert query_terms("what is the plan") == ["plan"]


def test_a_name_in_the_query_finds_the_file_named_after_it(tmp_path: Path) -> None:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    for path in ("/lib/BESTBUY_2019_10K.pdf", "/lib/WALMART_2019_10K.pdf"):
        index.write_document(FileFacts(path, path, 1, 1), "pdf", 1,
                             [NewChunk("Revenue grew in fiscal 2019 across all stores.", 1, 1)])
    hits = search(index, "How did revenue grow at Best Buy in FY2019?", 1, mode="lexical")
    assert [hit.path for hit in hits] == ["/lib/BESTBUY_2019_10K.pdf"]


def test_a_question_naming_a_file_searches_it_first_and_uncapped(index: Index) -> None:
    # "3M" and "2018" are both words of 3M_2018_10K.pdf's name: its chunks lead, past the cap of one.
    hits = search(index, "What were 3M's sales in 2018?", 3, tuning=RetrievalSettings(per_document=1))
    assert [Path(h.path).name for h in hits[:2]] == ["3M_2018_10K.pdf"] * 2
    assert [h.rank for h in hits] == [1, 2, 3] and len({h.chunk_id for h in hits}) == 3
    # One word of a name is not enough (common words are in many names); the cap applies as usual.
    hits = search(index, "3M sales", 3, tuning=RetrievalSettings(per_document=1))
    assert len({h.path for h in hits}) == 3
    # And it can be switched off.
    off = RetrievalSettings(per_document=1, named_document_terms=0)
    assert len({h.path for h in search(index, "What were 3M's sales in 2018?", 3, tuning=off)}) == 3


def test_vector_stores_search_within_documents() -> None:
    store = InMemoryVectorStore()
    store.upsert(["a", "b"], [[1.0, 0.0], [0.0, 1.0]], [{"document_id": "d1"}, {"document_id": "d2"}])
    assert [chunk for chunk, _ in store.query([1.0, 0.0], 2, document_ids=["d2"])] == ["b"]


def test_convex_combination_keeps_the_margin() -> None:
    # b is a close second in both lists; a wins one list by far and is absent from the other.
    fused = convex_combination([[("a", 10.0), ("b", 9.0), ("c", 0.0)], [("b", 0.9), ("c", 0.85), ("d", 0.1)]],
                               [1.0, 1.0])
    assert [item for item, _ in fused] == ["b", "a", "c", "d"]
    assert fused[0][1] == pytest.approx(0.9 + 1.0)
    assert convex_combination([[("x", 1.0)], []], [0.5, 0.5]) == [("x", 0.5)]


def test_hybrid_with_convex_fusion_ranks_best_first(index: Index) -> None:
    hits = search(index, "When do quinces ripen?", 3, tuning=RetrievalSettings(fusion="convex"))
    assert hits[0].text == "Quinces ripen in October."
