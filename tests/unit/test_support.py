"""The support scorer's pure core, with the hashing fake embedder and without any embedder."""

from __future__ import annotations

import pytest

from rag.answer.support import SupportMatch, SupportScorer, candidates, is_framing
from rag.settings import SupportSettings
from tests.fakes import HashingEmbedder

REPORT = (
    "The company opened an office in Lisbon. Revenue grew to 7 million euros in 2022. "
    "Costs stayed flat at 3 million euros."
)
NOTES = "Bananas are rich in potassium.\n\nThe Zorblax reactor runs at 42 kelvin. It was built in 1999."


@pytest.fixture(params=["hashing", "lexical"])
def scorer(request: pytest.FixtureRequest) -> SupportScorer:
    return SupportScorer(HashingEmbedder() if request.param == "hashing" else None)


def test_the_quote_is_the_supporting_sentence_with_exact_offsets(scorer: SupportScorer) -> None:
    [best] = scorer.rank("Revenue was 7 million euros in 2022.", [REPORT], top=1)
    assert best == SupportMatch(0, "Revenue grew to 7 million euros in 2022.", 40, 80, best.score)
    assert REPORT[best.start : best.end] == best.text


def test_matches_come_best_first_across_passages(scorer: SupportScorer) -> None:
    matches = scorer.rank("The Zorblax reactor runs at 42 kelvin.", [REPORT, NOTES], top=10)
    assert len(matches) == 6  # every sentence of both passages, no more
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    best = matches[0]
    assert (best.passage_index, best.text) == (1, "The Zorblax reactor runs at 42 kelvin.")
    assert NOTES[best.start : best.end] == best.text  # offsets are within that passage
    assert len(scorer.rank("The Zorblax reactor runs at 42 kelvin.", [REPORT, NOTES], top=2)) == 2


def test_scores_are_comparable_with_the_threshold(scorer: SupportScorer) -> None:
    [copied] = scorer.rank("Costs stayed flat at 3 million euros.", [REPORT], top=1)
    [unrelated] = scorer.rank("Penguins cannot fly over the Andes.", [REPORT], top=1)
    assert 0 < unrelated.score < SupportSettings().threshold <= copied.score < 1


def test_citation_marks_are_stripped_from_the_claim() -> None:
    embedder = HashingEmbedder()
    scorer = SupportScorer(embedder)
    plain = scorer.rank("Revenue was 7 million euros in 2022.", [REPORT])
    for marked in ("Revenue was 7 million euros in 2022. [1]", "Revenue was 7 million euros in 2022.【1†L3-L5】",
                   "Revenue was 7 million euros [1, 2] in 2022."):
        assert [(m.text, round(m.score, 9)) for m in scorer.rank(marked, [REPORT])] == \
            [(m.text, round(m.score, 9)) for m in plain]
    assert not any("[" in text or "【" in text for text in embedder.embedded_texts)


def test_empty_passages_and_claims_give_nothing(scorer: SupportScorer) -> None:
    assert scorer.rank("Revenue grew.", []) == []
    assert scorer.rank("Revenue grew.", ["", "  \n\n "]) == []
    assert scorer.rank("", [REPORT]) == []
    assert scorer.rank("[1]", [REPORT]) == []
    assert scorer.rank("Revenue grew.", [REPORT], top=0) == []
    [best] = scorer.rank("Revenue grew.", ["", REPORT], top=1)
    assert best.passage_index == 1


def test_repeated_texts_are_embedded_once() -> None:
    embedder = HashingEmbedder()
    scorer = SupportScorer(embedder)
    first = scorer.rank("Revenue was 7 million euros in 2022.", [REPORT])
    seen = len(embedder.embedded_texts)
    assert len(set(embedder.embedded_texts)) == seen  # not even twice within one call
    assert scorer.rank("Revenue was 7 million euros in 2022.", [REPORT]) == first
    assert len(embedder.embedded_texts) == seen
    scorer.rank("Costs stayed flat.", [REPORT])
    assert embedder.embedded_texts[seen:] == ["Costs stayed flat."]  # its words are all known already


def test_a_title_or_heading_is_demoted_but_still_a_candidate(scorer: SupportScorer) -> None:
    passage = "Revenue grew in 2022\n\nThe board met twice. Revenue grew by 7% in 2022, mostly in Europe."
    matches = scorer.rank("Revenue grew in 2022.", [passage], top=3)
    assert matches[0].text == "Revenue grew by 7% in 2022, mostly in Europe."
    assert "Revenue grew in 2022" in [m.text for m in matches]


def test_headings_are_one_line_paragraphs_above_more_text() -> None:
    passage = (
        "Annual report of the Zorblax company.\n\nIt grew. It hired.\n\nResults\n\nSales rose.\n\n"
        "- Sales rose\n\nA closing line."
    )
    marked = {c.sentence.text: c.heading for c in candidates([passage])}
    assert marked == {
        "Annual report of the Zorblax company.": True,  # a title: first, above a body of sentences
        "It grew.": False, "It hired.": False,
        "Results": True,  # short and unpunctuated
        "Sales rose.": False, "- Sales rose": False,  # a list item is not a heading
        "A closing line.": False,
    }
    one_sentence_paragraphs = "Bananas are yellow.\n\nApples are red.\n\nCherries are red."
    assert not any(c.heading for c in candidates([one_sentence_paragraphs]))


def test_the_heading_rules_follow_the_support_settings(scorer: SupportScorer) -> None:
    passage = "The board met twice.\n\nRevenue grew in 2022\n\nRevenue grew by 7% in 2022, mostly in Europe."
    heading = "Revenue grew in 2022"
    assert {c.sentence.text: c.heading for c in candidates([passage])}[heading] is True
    strict = SupportSettings(heading_max_words=3)  # four words: no longer a heading
    assert {c.sentence.text: c.heading for c in candidates([passage], strict)}[heading] is False
    # Without the penalty the heading, which repeats the claim, wins; with the default it is demoted.
    unpenalised = SupportScorer(scorer._embedder, SupportSettings(heading_penalty=0))
    assert unpenalised.rank("Revenue grew in 2022.", [passage], top=1)[0].text == heading
    assert scorer.rank("Revenue grew in 2022.", [passage], top=1)[0].text != heading


def test_framing_sentences_are_recognised() -> None:
    assert is_framing("However, it is unknown whether revenue will grow.")
    assert is_framing("We investigated the effect of price on sales.")
    assert is_framing("Did revenue grow?")
    assert not is_framing("Revenue grew by 7% in 2022.")
