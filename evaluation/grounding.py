"""Measuring the support scorer on SciFact: does the quote it picks for a claim lie in the gold rationale?

For each claim with SUPPORT evidence and each of its evidence documents, the claim plays the answer sentence
and the document's text plays what the answer cites. The document is written as Archivist's BEIR evaluation
writes SciFact (`title`, blank line, abstract: `evaluation.beir.document_text`) and goes through the product's
own path for a `.txt` file: parsed (the title line becomes the heading, outside the passage text) and cut into
chunks of at most `settings.chunking.tokens` tokens (`ingest.parsers`, `ingest.chunk`). Each chunk holding a gold
rationale
sentence is one passage a person could see cited: `quote_accuracy@k` counts those (pair, chunk) passages.
`*_whole_abstract` keeps the earlier count, one passage per pair holding the title and the whole abstract, which
the product never shows. A chunk has fewer sentences than an abstract, so picking the right one is easier:
`chance@1` (a sentence picked at random) says how much easier.

The gold sentences are the union of the claim's SUPPORT rationale sentences in that document. A chosen sentence
counts as gold when at least half of its characters lie inside gold rationale sentences (located by character
offsets in the document), so it is fair to both splitters: a piece of a gold sentence counts, and a merge of a
gold and a non-gold sentence counts only when the gold part is most of it. A chunk holds a gold sentence when at
least half of that sentence lies in it. `quote_accuracy@k`: one of the top k quotes is gold.

`evidence_sets` counts as SciFact lists its evidence instead: each SUPPORT rationale set of a document on its
own, gold being that set's sentences only (a document with two sets counts twice). This is the stricter count
behind the issue's baseline (the top all-MiniLM-L6-v2 cosine among the abstract's sentences gives @1 0.366 and
@3 0.648 over test's 216 sets); when a document has disjoint sets, one top quote can satisfy only one of them,
so `best_possible@1` says what a perfect @1 would be.

`python bench/grounding_tune.py DIR` refits the scorer's weights, threshold and heading penalty on the train
split (scikit-learn) and prints them, for pasting into rag/answer/support.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evaluation.beir import document_text
from evaluation.metrics import mean, percentile
from evaluation.record import run_record
from ingest.chunk import chunk_blocks
from ingest.parsers import parse_bytes
from rag.answer import support
from rag.answer.support import SupportScorer, candidates
from rag.errors import ConfigError
from rag.index.embedder import Embedder
from rag.settings import Settings

GOLD_SHARE = 0.5  # a quote counts as gold when at least this share of its characters is inside gold sentences

Span = tuple[int, int]
Chunker = Callable[[str], list[str]]  # a document's text -> the passages the product makes of it


class Progress(Protocol):
    def advance(self) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[int, str], Progress]


@dataclass(frozen=True)
class Pair:
    """One claim and one of its SUPPORT evidence documents."""

    claim_id: str
    claim: str
    doc_id: str
    passage: str  # the document's text as its file holds it
    gold: list[Span]  # character spans of the gold rationale sentences in `passage`
    evidence_sets: list[list[Span]] = field(default_factory=list)  # each SUPPORT set's own spans


@dataclass(frozen=True)
class Shown:
    """A text the scorer is given for a pair, with where each of its characters lies in the pair's document
    (`positions` has one entry per character, plus one for the end)."""

    text: str
    positions: tuple[int, ...]

    @classmethod
    def whole(cls, document: str) -> Shown:
        return cls(document, tuple(range(len(document) + 1)))

    def span(self, start: int, end: int) -> Span:
        """The document span of `text[start:end]`."""
        if end <= start:
            return self.positions[start], self.positions[start]
        return self.positions[start], self.positions[end - 1] + 1

    @property
    def extent(self) -> Span:
        return self.span(0, len(self.text))


def align(text: str, document: str, start: int = 0) -> Shown:
    """`text` (a chunk: the document's words from somewhere on, perhaps with white space changed) located in
    `document` at or after character `start`. The product's parser and chunker change only white space, so
    the non-space characters match one for one; anything else is a ConfigError (the evaluation would measure
    passages it cannot place)."""
    document_chars = [(i, c) for i, c in enumerate(document) if not c.isspace()]
    wanted = "".join(c for c in text if not c.isspace())
    solid = "".join(c for _, c in document_chars)
    first = sum(1 for i, _ in document_chars if i < start)
    found = solid.find(wanted, first)
    if found < 0:
        found = solid.find(wanted)
    if found < 0 or not wanted:
        raise ConfigError(f"A passage is not in its document's text: {text[:80]!r}")
    positions: list[int] = []
    matched = found
    for c in text:
        if c.isspace():  # white space the chunker wrote: placed at the next character of the document
            positions.append(document_chars[min(matched, len(document_chars) - 1)][0])
        else:
            positions.append(document_chars[matched][0])
            matched += 1
    positions.append(document_chars[matched - 1][0] + 1)
    return Shown(text, tuple(positions))


def product_chunker(settings: Settings, embedder: Embedder) -> Chunker:
    """What ingest makes of a `.txt` file's text: its parser's blocks (a title line becomes their heading) cut
    into chunks with the settings' sizes and the model's token counts, as `ingest.pipeline.Ingester` calls
    `chunk_blocks` (tests/unit/test_grounding_eval.py checks the two agree)."""

    def chunk(document: str) -> list[str]:
        parsed = parse_bytes(document.encode("utf-8"), "text")
        chunks = chunk_blocks(
            parsed.blocks, embedder.count_tokens, settings.chunking, split_pages=False,
            model_limit=embedder.max_tokens - 8,
        )
        return [c.text for c in chunks]

    return chunk


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"Not a SciFact folder: {path} is missing.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def locate(passage: str, sentences: list[str], start: int) -> list[Span]:
    """Character spans of `sentences`, in order, in `passage` from `start`; white space may differ."""
    spans = []
    cursor = start
    for sentence in sentences:
        wanted = sentence.strip()
        found = passage.find(wanted, cursor)
        if found >= 0:
            span = (found, found + len(wanted))
        else:
            pattern = r"\s*".join(re.escape(word) for word in wanted.split())
            match = re.compile(pattern).search(passage, cursor)
            if match is None:
                raise ConfigError(f"A rationale sentence is not in its document's text: {wanted[:80]!r}")
            span = (match.start(), match.end())
        spans.append(span)
        cursor = span[1]
    return spans


def load_corpus(scifact_dir: Path) -> dict[str, tuple[str, str]]:
    return {str(r["_id"]): (r.get("title") or "", r.get("text") or "")
            for r in _read_jsonl(scifact_dir / "corpus.jsonl")}


def load_pairs(scifact_dir: Path, split: str) -> list[Pair]:
    """Every (claim, SUPPORT evidence document) pair of a split, in the file's order."""
    corpus = load_corpus(scifact_dir)
    sentences = {str(r["doc_id"]): list(r["sentences"]) for r in _read_jsonl(scifact_dir / "corpus_sentences.jsonl")}
    pairs = []
    for record in _read_jsonl(scifact_dir / split / "claims.jsonl"):
        sets: dict[str, list[list[int]]] = {}
        for evidence in record.get("evidence", []):
            if evidence["label"] == "SUPPORT":
                sets.setdefault(str(evidence["doc_id"]), []).append(list(evidence["sentences"]))
        for doc_id, doc_sets in sets.items():
            if doc_id not in corpus or doc_id not in sentences:
                raise ConfigError(f"Evidence document {doc_id} of claim {record['id']} is not in the corpus.")
            title, text = corpus[doc_id]
            passage = document_text(title, text)
            spans = locate(passage, sentences[doc_id], len(title) + 2 if title else 0)
            gold = sorted({spans[i] for indices in doc_sets for i in indices})
            pairs.append(Pair(str(record["id"]), str(record["claim"]), doc_id, passage, gold,
                              [[spans[i] for i in indices] for indices in doc_sets]))
    return pairs


def _inside(span: Span, within: Span) -> int:
    return max(0, min(span[1], within[1]) - max(span[0], within[0]))


def is_gold(span: Span, gold: Sequence[Span]) -> bool:
    """Whether at least `GOLD_SHARE` of the span's characters lie inside the gold spans."""
    return sum(_inside(span, g) for g in gold) >= GOLD_SHARE * (span[1] - span[0])


def holds(shown: Shown, sentence: Span) -> bool:
    """Whether at least `GOLD_SHARE` of a document sentence lies in the shown text."""
    return _inside(sentence, shown.extent) >= GOLD_SHARE * (sentence[1] - sentence[0])


def product_passages(pair: Pair, chunker: Chunker) -> tuple[list[Shown], list[Shown]]:
    """The pair's document as the product's passages: (every chunk, the chunks holding a gold sentence)."""
    shown: list[Shown] = []
    for text in chunker(pair.passage):
        shown.append(align(text, pair.passage, shown[-1].extent[0] if shown else 0))
    return shown, [s for s in shown if any(holds(s, g) for g in pair.gold)]


class _Counts:
    """Quote accuracy over passages: each passage's top quotes against the pair's gold and each set's."""

    def __init__(self) -> None:
        self.at1: list[float] = []
        self.at3: list[float] = []
        self.set_at1: list[float] = []
        self.set_at3: list[float] = []
        self.best_possible = 0
        self.top_scores: list[float] = []
        self.chance: list[float] = []  # a sentence picked at random: the share of a passage's sentences that are gold

    def add(self, pair: Pair, shown: Shown, scorer: SupportScorer) -> None:
        matches = scorer.rank(pair.claim, [shown.text], top=3)
        quotes = [shown.span(m.start, m.end) for m in matches]
        hits = [is_gold(quote, pair.gold) for quote in quotes]
        self.at1.append(float(bool(hits[:1] and hits[0])))
        self.at3.append(float(any(hits)))
        self.top_scores.append(matches[0].score if matches else 0.0)
        sets = [spans for spans in pair.evidence_sets if any(holds(shown, s) for s in spans)]
        sentences = [shown.span(c.sentence.start, c.sentence.end) for c in candidates([shown.text])]
        self.chance.append(mean([float(is_gold(s, pair.gold)) for s in sentences]))
        self.best_possible += max((sum(is_gold(s, spans) for spans in sets) for s in sentences), default=0)
        for spans in sets:
            set_hits = [is_gold(quote, spans) for quote in quotes]
            self.set_at1.append(float(bool(set_hits[:1] and set_hits[0])))
            self.set_at3.append(float(any(set_hits)))

    def accuracy(self, suffix: str = "") -> dict[str, float]:
        return {f"quote_accuracy@1{suffix}": round(mean(self.at1), 4),
                f"quote_accuracy@3{suffix}": round(mean(self.at3), 4),
                f"chance@1{suffix}": round(mean(self.chance), 4)}

    def evidence_sets(self) -> dict[str, object]:
        return {"count": len(self.set_at1), "quote_accuracy@1": round(mean(self.set_at1), 4),
                "quote_accuracy@3": round(mean(self.set_at3), 4),
                "best_possible@1": round(self.best_possible / len(self.set_at1), 4) if self.set_at1 else 0.0}


def evaluate_grounding(
    scifact_dir: Path, split: str, scorer: SupportScorer, chunker: Chunker, settings: Settings,
    limit: int | None = None, progress: ProgressFactory | None = None,
) -> dict[str, object]:
    """Quote accuracy @1 and @3 over the split's (claim, evidence document) pairs (the first `limit` only):
    on the product's passages (the chunks holding gold), and on whole abstracts as before."""
    pairs = load_pairs(scifact_dir, split)[: limit or None]
    sink = progress(len(pairs), f"Grounding ({split})") if progress else None
    product, whole = _Counts(), _Counts()
    chunk_counts: list[float] = []
    spread = 0  # pairs whose gold sentences lie in more than one chunk
    try:
        for pair in pairs:
            # The whole abstract first: the scorer then embeds its sentences in the batches it did before the
            # product's passages were scored too (int8 vectors shift slightly with what shares their batch), so
            # the `_whole_abstract` figures are the earlier ones exactly; the passages reuse those vectors.
            whole.add(pair, Shown.whole(pair.passage), scorer)
            chunks, with_gold = product_passages(pair, chunker)
            chunk_counts.append(len(chunks))
            spread += len(with_gold) > 1
            for shown in with_gold:
                product.add(pair, shown, scorer)
            if sink:
                sink.advance()
    finally:
        if sink:
            sink.close()
    result: dict[str, object] = {
        "claims": len(pairs),
        **product.accuracy(),
        **whole.accuracy("_whole_abstract"),
        "split": split,
        "distinct_claims": len({pair.claim_id for pair in pairs}),
        # The product's passages: each chunk of an evidence abstract that holds a gold sentence.
        "passages": len(product.at1),
        "chunks_per_abstract": round(mean(chunk_counts), 2),
        "pairs_with_gold_in_several_chunks": spread,
        # Each SUPPORT evidence set on its own (the gold is that set's sentences only): a stricter count, as
        # SciFact lists them; a document with two sets counts twice.
        "evidence_sets": product.evidence_sets(),
        "evidence_sets_whole_abstract": whole.evidence_sets(),
        "top_score": {"p10": round(percentile(product.top_scores, 0.1), 4),
                      "p50": round(percentile(product.top_scores, 0.5), 4)},
        "scorer": "embedding" if scorer.uses_embedder else "lexical",
    }
    result.update(run_record(settings, support={
        **dataclasses.asdict(settings.support),
        "model": support._MODEL if scorer.uses_embedder else support._LEXICAL_MODEL}))
    return result
