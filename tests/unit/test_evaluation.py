"""The evaluation package's own parts: corpus file names, the renamed FinanceBench library, passages placed in
their document, the product's chunking of a grounding document, and what a result records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.beir import file_name, file_names, write_corpus
from evaluation.grounding import (
    Pair,
    Shown,
    align,
    evaluate_grounding,
    holds,
    is_gold,
    product_chunker,
    product_passages,
)
from evaluation.machine import cpu_flags, machine_facts
from evaluation.record import REDACTED, run_record
from evaluation.rename import CONVENTIONS, parse_name, rename_library, renamed
from ingest.pipeline import Ingester
from rag.answer.support import SupportScorer
from rag.errors import ConfigError
from rag.index.catalog import Catalog
from rag.index.index import Index
from rag.settings import Settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore

# ----- corpus documents as files -----

TRICKY_IDS = ["a/b", "a_b", "a b", "a:b", "a_2fb", "ä", "a", "A-1", "12345", "x" * 300, "x" * 301, ""]


def test_every_corpus_id_gets_its_own_file() -> None:
    names = [file_name(doc_id) for doc_id in TRICKY_IDS]
    assert len(set(names)) == len(TRICKY_IDS)  # "a/b", "a_b", "a b", "a:b" were all "a_b.txt" before
    assert all(len(name.encode()) <= 255 and "/" not in name and name.endswith(".txt") for name in names)
    assert file_name("12345") == "12345.txt"  # SciFact's ids keep their names, and its cached index stays valid


def test_write_corpus_writes_every_document(tmp_path: Path) -> None:
    corpus = {"a/b": ("Title one", "first text"), "a_b": ("Title two", "second text")}
    by_file = write_corpus(corpus, tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(by_file)
    assert len(by_file) == 2
    for name, doc_id in by_file.items():
        title, text = corpus[doc_id]
        assert (tmp_path / name).read_text(encoding="utf-8") == f"{title}\n\n{text}\n"


def test_ids_differing_only_in_case_are_refused() -> None:
    with pytest.raises(ConfigError, match="letter case"):
        file_names(["Doc1", "doc1"])


# ----- the renamed FinanceBench library -----


def test_a_financebench_name_is_read_back() -> None:
    assert parse_name("BESTBUY_2024Q2_10Q", "Best Buy") == parse_name("BESTBUY_2024Q2_10Q", "Best Buy")
    filing = parse_name("PEPSICO_2023_8K_dated-2023-05-05", "PepsiCo")
    assert (filing.company, filing.kind, filing.year, filing.quarter, filing.date) == (
        "PepsiCo", "8k", 2023, None, "2023-05-05")
    filing = parse_name("JOHNSON_JOHNSON_2022Q4_EARNINGS")  # no documents.jsonl: the name's own words
    assert (filing.company, filing.kind, filing.year, filing.quarter) == ("Johnson Johnson", "earnings", 2022, 4)
    assert parse_name("FOOTLOCKER_2022_8K_dated_2022-08-19").date == "2022-08-19"
    with pytest.raises(ConfigError, match="Not a FinanceBench file name"):
        parse_name("annual report")


def test_each_convention_reads_like_a_person_named_the_file() -> None:
    filing = parse_name("BESTBUY_2023_10K", "Best Buy")
    assert [convention(filing) for convention in CONVENTIONS] == [
        "Best Buy Co - Annual Report FY2023", "2023 Best Buy Form 10-K", "best-buy-10k-2023",
        "Best Buy annual report (2023)", "FY23 Best Buy 10-K",
    ]
    quarter = parse_name("BESTBUY_2024Q2_10Q", "Best Buy")
    assert CONVENTIONS[4](quarter) == "Q2 FY24 Best Buy 10-Q"


def test_renaming_is_deterministic_unique_and_drops_financebench_spelling() -> None:
    names = ["BESTBUY_2017_10K", "BESTBUY_2019_10K", "BESTBUY_2023_10K", "BESTBUY_2024Q2_10Q", "AMCOR_2023_10K",
             "AMCOR_2023Q2_10Q", "AMCOR_2023Q4_EARNINGS", "AMCOR_2022_8K_dated-2022-07-01", "3M_2018_10K"]
    companies = {name: ("Best Buy" if name.startswith("BEST") else "Amcor" if name.startswith("AMCOR") else "3M")
                 for name in names}
    first = rename_library(names, companies)
    assert first == rename_library(list(reversed(names)), companies)  # the same names on every run
    assert set(first) == set(names) and len({new.casefold() for new in first.values()}) == len(names)
    assert all("BESTBUY" not in new and "_" not in new for new in first.values())
    used = {next(i for i, c in enumerate(CONVENTIONS) if c(parse_name(n, companies[n])) == first[n]) for n in names}
    assert len(used) >= 3  # several conventions, not one renamed pattern
    assert renamed("BESTBUY_2023_10K", "Best Buy") == first["BESTBUY_2023_10K"]


# ----- grounding: passages as the product makes them -----


def test_align_places_a_passage_with_changed_white_space() -> None:
    document = "Title\n\nFirst  sentence here.\nSecond sentence there. Third one."
    shown = align("Second sentence there. Third one.", document)
    assert document[slice(*shown.span(0, 6))] == "Second"
    assert document[slice(*shown.extent)] == "Second sentence there. Third one."
    squeezed = align("First sentence here. Second", document)  # the chunker joined lines with one space
    assert document[slice(*squeezed.span(0, 20))] == "First  sentence here."
    with pytest.raises(ConfigError, match="not in its document"):
        align("Not there at all", document)


def test_gold_and_held_spans() -> None:
    assert is_gold((10, 20), [(0, 15)])  # half inside
    assert not is_gold((10, 20), [(0, 14)])
    shown = Shown("x" * 10, tuple(range(100, 111)))
    assert holds(shown, (105, 115)) and not holds(shown, (106, 120))


def sentence_text(n: int) -> str:
    return f"Sentence number {n} tells of result {n} in the study of widgets and their many uses."


def test_product_chunker_makes_what_ingest_indexes(tmp_path: Path) -> None:
    # The evaluation's chunks of a .txt document are those the real ingest path writes to the index.
    embedder = HashingEmbedder(max_tokens=64)
    settings = Settings(data_dir=tmp_path / "data", chunk_tokens=40, chunk_overlap_tokens=8)
    body = " ".join(sentence_text(n) for n in range(12))
    text = f"A study of widgets\n\n{body}\n"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "1.txt").write_text(text, encoding="utf-8")
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), embedder)
    try:
        Ingester(index, settings).ingest_paths([tmp_path / "docs"])
        indexed = [row.text for row in index.catalog.chunks_by_id(sorted(index.catalog.all_chunk_ids())).values()]
    finally:
        index.close()
    chunks = product_chunker(settings, embedder)(text)
    assert len(chunks) > 2  # cut into several passages, the title left out of them
    assert sorted(chunks) == sorted(indexed)
    assert not any("A study of widgets" in chunk for chunk in chunks)

    gold_start = text.index(sentence_text(7))
    pair = Pair("c", "claim", "1", text, [(gold_start, gold_start + len(sentence_text(7)))])
    shown, with_gold = product_passages(pair, product_chunker(settings, embedder))
    assert [s.text for s in shown] == chunks
    assert with_gold and all(sentence_text(7) in s.text for s in with_gold)
    assert all(text[slice(*s.extent)].split() == s.text.split() for s in shown)


# ----- what a result records -----


def test_a_result_records_settings_without_secrets_and_the_machine(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, openai_api_key="sk-very-secret", pdf_passwords=["hunter2"],
                        access_token="t0ken-secret", chunk_tokens=180)
    record = run_record(settings, mode="hybrid")
    text = json.dumps(record)
    assert "sk-very-secret" not in text and "hunter2" not in text and "t0ken-secret" not in text
    recorded = record["settings"]
    assert recorded["openai_api_key"] == REDACTED and recorded["pdf_passwords"] == REDACTED
    assert recorded["chunking"]["tokens"] == 180 and recorded["mode"] == "hybrid"
    assert recorded["embedding_model"]["name"] == "all-MiniLM-L6-v2-int8"
    machine = record["machine"]
    assert {"cores", "avx2", "cpu_flags", "python", "packages"} <= set(machine)
    for package in ("numpy", "torch", "onnxruntime", "chromadb", "sentence-transformers", "pypdf"):
        assert machine["packages"][package], package  # installed here: a version, not None


def test_cpu_flags_come_from_the_flags_line() -> None:
    cpuinfo = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\nbugs\t\t: spectre\n"
    assert cpu_flags(cpuinfo) == ["avx2", "avx512_vnni", "avx512f", "fpu", "sse2"]
    assert cpu_flags("") == []
    assert isinstance(machine_facts()["cpu_flags"], list)


def write_scifact(folder: Path, sentences: list[str], gold: list[int]) -> None:
    """A one-document SciFact folder: the document, its sentences, and one train claim citing `gold`."""
    (folder / "train").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        json.dumps({"_id": "1", "title": "A study of widgets", "text": " ".join(sentences)}) + "\n")
    (folder / "corpus_sentences.jsonl").write_text(
        json.dumps({"doc_id": "1", "title": "A study of widgets", "sentences": sentences}) + "\n")
    claim = {"id": 7, "claim": sentences[gold[0]], "cited_doc_ids": [1],
             "evidence": [{"doc_id": "1", "label": "SUPPORT", "sentences": gold}]}
    (folder / "train" / "claims.jsonl").write_text(json.dumps(claim) + "\n")


def test_grounding_is_scored_on_the_passages_holding_gold_and_on_the_whole_abstract(tmp_path: Path) -> None:
    sentences = [sentence_text(n) for n in range(12)]
    write_scifact(tmp_path, sentences, [7])
    embedder = HashingEmbedder(max_tokens=64)
    settings = Settings(data_dir=tmp_path / "data", chunk_tokens=40, chunk_overlap_tokens=8)
    chunker = product_chunker(settings, embedder)
    result = evaluate_grounding(tmp_path, "train", SupportScorer(None), chunker, settings)
    chunks = chunker(f"A study of widgets\n\n{' '.join(sentences)}\n")
    holding = [chunk for chunk in chunks if sentences[7] in chunk]
    assert result["claims"] == 1 and result["passages"] == len(holding) < len(chunks)
    # The claim is the gold sentence itself: found at the top whether the passage is a chunk or the abstract.
    assert result["quote_accuracy@1"] == 1.0 and result["quote_accuracy@1_whole_abstract"] == 1.0
    # One gold sentence among each passage's sentences: a random pick's chance is 1 in that many.
    per_chunk = [1 / len([s for s in sentences if s in chunk]) for chunk in holding]
    assert result["chance@1"] == pytest.approx(sum(per_chunk) / len(per_chunk), abs=1e-4)
    assert result["chance@1_whole_abstract"] == pytest.approx(1 / 13, abs=1e-4)  # the title is a sentence too
    assert result["settings"]["chunking"]["tokens"] == 40 and "machine" in result
