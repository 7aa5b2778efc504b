"""Measuring the support scorer on SciFact: does the quote it picks for a claim lie in the gold rationale?

For each claim with SUPPORT evidence and each of its evidence documents, the claim plays the answer sentence
and the document plays the cited passage, written as Archivist indexes SciFact (`title`, blank line, abstract:
see `ingest.evaluate.write_corpus`). The gold sentences are the union of the claim's SUPPORT rationale
sentences in that document. A chosen sentence counts as gold when at least half of its characters lie inside
gold rationale sentences (located by character offsets in the passage), so it is fair to both splitters: a
piece of a gold sentence counts, and a merge of a gold and a non-gold sentence counts only when the gold part
is most of it. `quote_accuracy@k`: one of the top k quotes is gold.

`evidence_sets` counts as SciFact lists its evidence instead: each SUPPORT rationale set of a document on its
own, gold being that set's sentences only (a document with two sets counts twice). This is the stricter count
behind the issue's baseline (the top all-MiniLM-L6-v2 cosine among the abstract's sentences gives @1 0.366 and
@3 0.648 over test's 216 sets); when a document has disjoint sets, one top quote can satisfy only one of them,
so `best_possible@1` says what a perfect @1 would be.

`python -m ingest.grounding_eval tune DIR` refits the scorer's weights and threshold on the train split
(scikit-learn) and prints them, for pasting into rag/support.py.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rag.errors import ConfigError
from rag.metrics import mean, percentile
from rag.support import SupportMatch, SupportScorer, candidates

logger = logging.getLogger(__name__)

GOLD_SHARE = 0.5  # a quote counts as gold when at least this share of its characters is inside gold sentences


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
    passage: str
    gold: list[tuple[int, int]]  # character spans of the gold rationale sentences in `passage`
    evidence_sets: list[list[tuple[int, int]]] = field(default_factory=list)  # each SUPPORT set's own spans


def passage_text(title: str, text: str) -> str:
    """A SciFact document as Archivist indexes it (the same layout as `ingest.evaluate.write_corpus`)."""
    return f"{title}\n\n{text}\n" if title else f"{text}\n"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"Not a SciFact folder: {path} is missing.")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def locate(passage: str, sentences: list[str], start: int) -> list[tuple[int, int]]:
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


def load_pairs(scifact_dir: Path, split: str) -> list[Pair]:
    """Every (claim, SUPPORT evidence document) pair of a split, in the file's order."""
    corpus = {str(r["_id"]): (r.get("title") or "", r.get("text") or "")
              for r in _read_jsonl(scifact_dir / "corpus.jsonl")}
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
            passage = passage_text(title, text)
            spans = locate(passage, sentences[doc_id], len(title) + 2 if title else 0)
            gold = sorted({spans[i] for indices in doc_sets for i in indices})
            pairs.append(Pair(str(record["id"]), str(record["claim"]), doc_id, passage, gold,
                              [[spans[i] for i in indices] for indices in doc_sets]))
    return pairs


def is_gold(match: SupportMatch, gold: list[tuple[int, int]]) -> bool:
    inside = sum(max(0, min(match.end, end) - max(match.start, start)) for start, end in gold)
    return inside >= GOLD_SHARE * (match.end - match.start)


def evaluate_grounding(
    scifact_dir: Path, split: str, scorer: SupportScorer, limit: int | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, object]:
    """Quote accuracy @1 and @3 over the split's (claim, evidence document) pairs (the first `limit` only)."""
    pairs = load_pairs(scifact_dir, split)[: limit or None]
    sink = progress(len(pairs), f"Grounding ({split})") if progress else None
    at1, at3, set_at1, set_at3, top_scores = [], [], [], [], []
    best_possible = 0
    try:
        for pair in pairs:
            matches = scorer.rank(pair.claim, [pair.passage], top=3)
            hits = [is_gold(match, pair.gold) for match in matches]
            at1.append(float(bool(hits[:1] and hits[0])))
            at3.append(float(any(hits)))
            top_scores.append(matches[0].score if matches else 0.0)
            sentences = [SupportMatch(0, c.sentence.text, c.sentence.start, c.sentence.end, 0.0)
                         for c in candidates([pair.passage])]
            best_possible += max((sum(is_gold(s, spans) for spans in pair.evidence_sets) for s in sentences), default=0)
            for spans in pair.evidence_sets:
                set_hits = [is_gold(match, spans) for match in matches]
                set_at1.append(float(bool(set_hits[:1] and set_hits[0])))
                set_at3.append(float(any(set_hits)))
            if sink:
                sink.advance()
    finally:
        if sink:
            sink.close()
    return {
        "claims": len(pairs),
        "quote_accuracy@1": round(mean(at1), 4),
        "quote_accuracy@3": round(mean(at3), 4),
        "split": split,
        "distinct_claims": len({pair.claim_id for pair in pairs}),
        # Each SUPPORT evidence set on its own (the gold is that set's sentences only): a stricter count, as
        # SciFact lists them; a document with two sets counts twice.
        "evidence_sets": {"count": len(set_at1), "quote_accuracy@1": round(mean(set_at1), 4),
                          "quote_accuracy@3": round(mean(set_at3), 4),
                          "best_possible@1": round(best_possible / len(set_at1), 4) if set_at1 else 0.0},
        "top_score": {"p10": round(percentile(top_scores, 0.1), 4), "p50": round(percentile(top_scores, 0.5), 4)},
        "scorer": "embedding" if scorer.uses_embedder else "lexical",
    }


# ----- tuning (train split only): the weights and threshold in rag/support.py come from here -----


def _closest_other_documents(scifact_dir: Path, split: str) -> dict[str, str]:
    """For each claim with SUPPORT evidence, the corpus document closest to it by TF-IDF among those it
    neither cites nor has evidence in: an on-topic passage that (as far as SciFact knows) does not support it."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = {str(r["_id"]): f"{r.get('title') or ''} {r.get('text') or ''}"
              for r in _read_jsonl(scifact_dir / "corpus.jsonl")}
    ids = list(corpus)
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    matrix = vectorizer.fit_transform([corpus[doc_id] for doc_id in ids])
    records = [r for r in _read_jsonl(scifact_dir / split / "claims.jsonl")
               if any(e["label"] == "SUPPORT" for e in r.get("evidence", []))]
    similarities = (vectorizer.transform([str(r["claim"]) for r in records]) @ matrix.T).toarray()
    closest = {}
    for record, row in zip(records, similarities, strict=True):
        known = {str(d) for d in record.get("cited_doc_ids", [])} | {str(e["doc_id"]) for e in record["evidence"]}
        closest[str(record["id"])] = next(ids[j] for j in row.argsort()[::-1] if ids[j] not in known)
    return closest


def tune(scifact_dir: Path, scorer: SupportScorer, split: str = "train") -> dict[str, object]:
    """Fit the logistic model over the scorer's features on one split's evidence documents (headings left
    out: they are demoted by a fixed penalty), then pick the threshold on that model's scores."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from rag import support

    pairs = load_pairs(scifact_dir, split)
    closest = _closest_other_documents(scifact_dir, split)
    corpus = {str(r["_id"]): passage_text(r.get("title") or "", r.get("text") or "")
              for r in _read_jsonl(scifact_dir / "corpus.jsonl")}
    names = list((support._MODEL if scorer.uses_embedder else support._LEXICAL_MODEL)[1])
    rows: list[tuple[int, list[float], bool, bool]] = []  # (pair, features, heading, gold)
    others: dict[str, list[tuple[list[float], bool]]] = {}
    for number, pair in enumerate(pairs):
        found = candidates([pair.passage])
        for c, features in zip(found, scorer.features(pair.claim, found), strict=True):
            gold = is_gold(SupportMatch(0, c.sentence.text, c.sentence.start, c.sentence.end, 0.0), pair.gold)
            rows.append((number, [features[name] for name in names], c.heading, gold))
        if pair.claim_id not in others:
            found = candidates([corpus[closest[pair.claim_id]]])
            others[pair.claim_id] = [([features[name] for name in names], c.heading)
                                     for c, features in zip(found, scorer.features(pair.claim, found), strict=True)]
        logger.info("features of pair %d/%d", number + 1, len(pairs))
    body = [row for row in rows if not row[2]]
    model = LogisticRegression(max_iter=1000).fit(np.array([r[1] for r in body]), np.array([r[3] for r in body]))
    fitted = (float(model.intercept_[0]), {n: float(w) for n, w in zip(names, model.coef_[0], strict=True)})

    def score(features: list[float], heading: bool) -> float:
        return support._probability(fitted, dict(zip(names, features, strict=True)), heading)

    best: dict[int, float] = {}
    for number, values, heading, _ in rows:
        best[number] = max(best.get(number, 0.0), score(values, heading))
    positives = sorted(best.values())
    negatives = sorted(max(score(f, h) for f, h in found) for found in others.values() if found)
    thresholds = sorted(set(positives) | set(negatives))

    def rates(threshold: float) -> tuple[float, float]:
        return (sum(s >= threshold for s in positives) / len(positives),
                sum(s >= threshold for s in negatives) / len(negatives))

    # Youden's J: the threshold that best separates the two, counting a wrong "unsupported" mark on a supported
    # claim as bad as a missed one on an unsupported claim.
    threshold = max(thresholds, key=lambda t: rates(t)[0] - rates(t)[1])
    kept, passed = rates(threshold)
    trade_offs = {f"{share:.2f}": {"threshold": round(t, 4), "others_passed": round(rates(t)[1], 4)}
                  for share in (0.95, 0.9, 0.8)
                  for t in [positives[int((1 - share) * len(positives))]]}
    return {"bias": round(fitted[0], 4), "weights": {n: round(w, 4) for n, w in fitted[1].items()},
            "threshold": round(threshold, 4), "supported_kept": round(kept, 4), "others_passed": round(passed, 4),
            "keeping_supported": trade_offs, "pairs": len(positives), "other_documents": len(negatives)}


def main(argv: list[str]) -> int:
    """`python -m ingest.grounding_eval tune DIR [--lexical]`: print the weights and threshold fitted on train."""
    if len(argv) < 2 or argv[0] != "tune":
        print(main.__doc__, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    embedder = None
    if "--lexical" not in argv:
        from rag.factory import make_embedder
        from rag.settings import load_settings

        embedder = make_embedder(load_settings())
    print(json.dumps(tune(Path(argv[1]), SupportScorer(embedder)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
