from __future__ import annotations

from rag.answer.citations import citation_numbers, strip_citations, valid_numbers
from rag.answer.grounding import citations_for, ground_sentences
from rag.answer.support import SupportScorer
from rag.records import Hit


def hit(n: int, text: str, path: str = "/docs/a.pdf", page: int = 1) -> Hit:
    return Hit(rank=n, score=1.0, path=path, page_start=page, page_end=page, chunk_id=f"c{n}", text=text)


def test_all_citation_forms_in_order_of_first_use() -> None:
    text = "A [2]. B [1, 3]. C [3][4]. D 【5】 and 【6†L1-L3】. Again [2]."
    assert citation_numbers(text) == [2, 1, 3, 4, 5, 6]


def test_numbers_without_a_source_are_dropped() -> None:
    assert valid_numbers("X [1] Y [7] Z [0] W [2]", source_count=2) == [1, 2]


def test_citations_map_to_file_page_and_supporting_sentence() -> None:
    passages = [
        hit(1, "Ollama is a runtime. It listens on port 11434 by default. It has a CLI.", "/d/ollama.md", 1),
        hit(2, "Chroma stores vectors. Its server uses port 8000.", "/d/chroma.pdf", 7),
    ]
    answer = "Chroma's server uses port 8000 [2]. Ollama listens on port 11434 [1]. Nonsense [9]."
    scorer = SupportScorer(None)
    citations = citations_for(ground_sentences(answer, passages, scorer), passages, scorer)
    assert [(c.n, c.path, c.page_start, c.chunk_id) for c in citations] == [
        (2, "/d/chroma.pdf", 7, "c2"),
        (1, "/d/ollama.md", 1, "c1"),
    ]
    assert citations[0].quote == "Its server uses port 8000."
    assert citations[1].quote == "It listens on port 11434 by default."
    assert passages[0].text[citations[1].quote_start:citations[1].quote_end] == citations[1].quote


def test_strip_citations() -> None:
    assert strip_citations("Port 11434 [1][2] 【3】") == "Port 11434"
    assert strip_citations("Up 5% [1]. Down [2, 3].") == "Up 5%. Down."
