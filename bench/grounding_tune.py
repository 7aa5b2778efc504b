"""Fit the support scorer (rag/answer/support.py) on SciFact **train** only; test is never read here.

    python bench/grounding_tune.py ../shared/data/scifact [--lexical] [--passages whole|product]

Prints JSON:
- `fit`: the logistic model over the scorer's features (headings left out: they are demoted by a fixed penalty)
  and the threshold on that model's scores, as `_MODEL` / `_LEXICAL_MODEL` and `SUPPORT_THRESHOLD` hold them.
  `--passages whole` (the default, how the constants were fitted) fits on whole "title + abstract" passages;
  `product` on the chunks a person sees cited (`evaluation.grounding.product_passages`).
- `heading_penalty`: quote accuracy@1 on train's product passages (and on whole abstracts, for comparison) for
  each `HEADING_PENALTY` in a grid, with the current model, and how often a heading is the top pick.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script; bench/ingest.py would shadow the ingest package

from rag import offline  # noqa: E402, F401, I001  (before anything heavy)

from evaluation.beir import document_text  # noqa: E402
from evaluation.grounding import (  # noqa: E402
    Chunker, Pair, Shown, is_gold, load_corpus, load_pairs, product_chunker, product_passages,
)
from rag.answer import support  # noqa: E402
from rag.factory import make_embedder  # noqa: E402
from rag.settings import load_settings  # noqa: E402
from rag.answer.support import SupportScorer, candidates  # noqa: E402

logger = logging.getLogger("grounding_tune")

PENALTIES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)
SPLIT = "train"  # the only split this script reads


def _closest_other_documents(scifact_dir: Path) -> dict[str, str]:
    """For each train claim with SUPPORT evidence, the corpus document closest to it by TF-IDF among those it
    neither cites nor has evidence in: an on-topic passage that (as far as SciFact knows) does not support it."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = {doc_id: f"{title} {text}" for doc_id, (title, text) in load_corpus(scifact_dir).items()}
    ids = list(corpus)
    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    matrix = vectorizer.fit_transform([corpus[doc_id] for doc_id in ids])
    records = [json.loads(line) for line in (scifact_dir / SPLIT / "claims.jsonl").read_text().splitlines()
               if line.strip()]
    records = [r for r in records if any(e["label"] == "SUPPORT" for e in r.get("evidence", []))]
    similarities = (vectorizer.transform([str(r["claim"]) for r in records]) @ matrix.T).toarray()
    closest = {}
    for record, row in zip(records, similarities, strict=True):
        known = {str(d) for d in record.get("cited_doc_ids", [])} | {str(e["doc_id"]) for e in record["evidence"]}
        closest[str(record["id"])] = next(ids[j] for j in row.argsort()[::-1] if ids[j] not in known)
    return closest


def _shown(pair: Pair, passages: str, chunker: Chunker) -> list[Shown]:
    return product_passages(pair, chunker)[1] if passages == "product" else [Shown.whole(pair.passage)]


def fit(scifact_dir: Path, scorer: SupportScorer, passages: str, chunker: Chunker) -> dict[str, object]:
    """The logistic model over the scorer's features on train's evidence passages (headings left out), then
    the threshold on that model's scores (Youden's J against the closest other documents)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    pairs = load_pairs(scifact_dir, SPLIT)
    closest = _closest_other_documents(scifact_dir)
    corpus = {doc_id: document_text(title, text) for doc_id, (title, text) in load_corpus(scifact_dir).items()}
    names = list((support._MODEL if scorer.uses_embedder else support._LEXICAL_MODEL)[1])
    rows: list[tuple[int, list[float], bool, bool]] = []  # (pair, features, heading, gold)
    others: dict[str, list[tuple[list[float], bool]]] = {}
    for number, pair in enumerate(pairs):
        for shown in _shown(pair, passages, chunker):
            found = candidates([shown.text])
            for c, features in zip(found, scorer.features(pair.claim, found), strict=True):
                gold = is_gold(shown.span(c.sentence.start, c.sentence.end), pair.gold)
                rows.append((number, [features[name] for name in names], c.heading, gold))
        if pair.claim_id not in others:
            other = corpus[closest[pair.claim_id]]
            texts = chunker(other) if passages == "product" else [other]
            others[pair.claim_id] = []
            for text in texts:
                found = candidates([text])
                others[pair.claim_id] += [([features[name] for name in names], c.heading)
                                          for c, features in zip(found, scorer.features(pair.claim, found),
                                                                 strict=True)]
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
    return {"passages": passages, "bias": round(fitted[0], 4),
            "weights": {n: round(w, 4) for n, w in fitted[1].items()},
            "threshold": round(threshold, 4), "supported_kept": round(kept, 4), "others_passed": round(passed, 4),
            "keeping_supported": trade_offs, "pairs": len(positives), "other_documents": len(negatives)}


def heading_penalties(scifact_dir: Path, scorer: SupportScorer, chunker: Chunker) -> dict[str, object]:
    """Quote accuracy@1 on train for each penalty in `PENALTIES`, with the scorer's current model: on the
    product's passages and on whole abstracts. The features do not depend on the penalty, so each passage is
    scored once and re-ranked per penalty (first on a tie, as `SupportScorer.rank`)."""
    model = support._MODEL if scorer.uses_embedder else support._LEXICAL_MODEL
    bias, weights = model
    tables: dict[str, list[list[tuple[float, bool, bool]]]] = {"product": [], "whole": []}  # (logit, heading, gold)
    pairs = load_pairs(scifact_dir, SPLIT)
    for number, pair in enumerate(pairs):
        for kind in tables:
            for shown in _shown(pair, kind, chunker):
                found = candidates([shown.text])
                tables[kind].append([
                    (bias + math.fsum(w * features[n] for n, w in weights.items()), c.heading,
                     is_gold(shown.span(c.sentence.start, c.sentence.end), pair.gold))
                    for c, features in zip(found, scorer.features(pair.claim, found), strict=True)])
        logger.info("pair %d/%d", number + 1, len(pairs))
    result: dict[str, object] = {}
    for kind, passages in tables.items():
        grid = {}
        for penalty in PENALTIES:
            tops = [max(rows, key=lambda row: row[0] - penalty * row[1]) for rows in passages if rows]
            grid[str(penalty)] = {"quote_accuracy@1": round(sum(top[2] for top in tops) / len(tops), 4),
                                  "heading_on_top": round(sum(top[1] for top in tops) / len(tops), 4)}
        result[kind] = {"passages": len(passages),
                        "passages_with_a_heading": sum(any(row[1] for row in rows) for rows in passages),
                        "by_penalty": grid}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scifact", type=Path, help="SciFact (corpus.jsonl, corpus_sentences.jsonl, train/)")
    parser.add_argument("--lexical", action="store_true", help="fit the scorer used without an embedder")
    parser.add_argument("--passages", choices=["whole", "product"], default="whole",
                        help="what the weights and threshold are fitted on (default whole, as rag/answer/support.py's)")
    parser.add_argument("--only", choices=["fit", "heading-penalty"], help="one of the two (default both)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = load_settings()
    embedder = make_embedder(settings)
    chunker = product_chunker(settings, embedder)
    scorer = SupportScorer(None if args.lexical else embedder)
    output: dict[str, object] = {"split": SPLIT}
    if args.only in (None, "heading-penalty"):
        output["heading_penalty"] = heading_penalties(args.scifact, scorer, chunker)
    if args.only in (None, "fit"):
        output["fit"] = fit(args.scifact, scorer, args.passages, chunker)
    print(json.dumps(output, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
