from __future__ import annotations

from rag.answer.sentences import split_sentences


def test_sentences_keep_their_positions() -> None:
    text = "Ollama listens on port 11434. It serves gpt-oss! Does it stream? Yes."
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "Ollama listens on port 11434.",
        "It serves gpt-oss!",
        "Does it stream?",
        "Yes.",
    ]
    for sentence in sentences:
        assert text[sentence.start : sentence.end] == sentence.text


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    text = "Revenue grew 3.5% in 2022, e.g. in Europe. See Fig. 2 for details."
    assert [s.text for s in split_sentences(text)] == [
        "Revenue grew 3.5% in 2022, e.g. in Europe.",
        "See Fig. 2 for details.",
    ]


def test_a_citation_stays_with_its_sentence() -> None:
    text = "The port is 11434. [1] It streams NDJSON. [2][3] Done"
    assert [s.text for s in split_sentences(text)] == ["The port is 11434. [1]", "It streams NDJSON. [2][3]", "Done"]


def test_blank_lines_end_sentences() -> None:
    text = "# Heading\n\nFirst line\ncontinues here.\n\n- item"
    assert [s.text for s in split_sentences(text)] == ["# Heading", "First line\ncontinues here.", "- item"]


def test_empty_text_has_no_sentences() -> None:
    assert split_sentences("   \n\n ") == []
