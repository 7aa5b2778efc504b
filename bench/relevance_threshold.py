"""Tune the "nothing relevant" threshold: below it, `ask` answers "not in your documents" without the LLM.

The signal is the best cosine similarity between the question and the passages search returns (`Hit.similarity`,
the dense arm's score, which means the same in every search). Answerable questions: SciFact *train* claims
against the SciFact corpus, counted only when a gold document is among the passages the LLM would see.
Unanswerable questions: off-topic ones — FinanceBench questions against the SciFact corpus, and SciFact train
claims against the FinanceBench filings. The threshold kept is the highest one that refuses at most
`--max-false-refusals` of the answerable questions (a wrong "not in your documents" is worse than an LLM call
that then says so itself).

    python bench/relevance_threshold.py [--sources 6] [--max-false-refusals 0.01]

Prints JSON. The indexes are the evaluation caches (`archivist eval beir|financebench` builds them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script; bench/ingest.py would shadow the ingest package

from evaluation.beir import BeirEvaluation, load_beir_split  # noqa: E402
from evaluation.financebench import FinanceBenchEvaluation  # noqa: E402
from evaluation.metrics import percentile  # noqa: E402
from rag import offline  # noqa: E402, F401  (before anything heavy)
from rag.records import Hit  # noqa: E402
from rag.search.retrieve import search  # noqa: E402
from rag.settings import load_settings  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def best_similarity(hits: list[Hit]) -> float:
    return max((hit.similarity for hit in hits if hit.similarity is not None), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--sources", type=int, default=6, help="passages per question (Settings.sources)")
    parser.add_argument("--max-false-refusals", type=float, default=0.01)
    args = parser.parse_args()
    settings = load_settings()
    scifact, financebench = args.data / "scifact", args.data / "financebench"
    claims, qrels = load_beir_split(scifact, "train")
    answerable: list[float] = []
    unanswerable: list[float] = []
    print("SciFact train claims against SciFact; FinanceBench questions against SciFact", file=sys.stderr)
    with BeirEvaluation(scifact, settings) as evaluation:
        assert evaluation.index is not None
        for query_id, claim in claims.items():
            hits = search(evaluation.index, claim, args.sources)
            found = {evaluation.by_file.get(Path(hit.path).name) for hit in hits}
            if found & set(qrels[query_id]):
                answerable.append(best_similarity(hits))
        with FinanceBenchEvaluation(financebench, settings) as finance:
            questions = [q["question"] for q in finance.questions]
        for question in questions:
            unanswerable.append(best_similarity(search(evaluation.index, question, args.sources)))
    print("SciFact train claims against FinanceBench", file=sys.stderr)
    with FinanceBenchEvaluation(financebench, settings) as finance:
        assert finance.index is not None
        for claim in list(claims.values())[:300]:
            unanswerable.append(best_similarity(search(finance.index, claim, args.sources)))
    # Held out, not tuned on: FinanceBench questions against their own filings, counted when an evidence
    # page is among the passages. Financial questions and table-like pages sit further apart in meaning than
    # SciFact's claims and abstracts, so this shows how the threshold carries over to other documents.
    finance_answerable: list[float] = []
    with FinanceBenchEvaluation(financebench, settings) as finance:
        assert finance.index is not None
        for question in finance.questions:
            hits = search(finance.index, question["question"], args.sources)
            evidence = {(e["doc_name"], int(e["evidence_page_num"]) + 1) for e in question["evidence"]}
            pages = {(Path(h.path).stem, p) for h in hits for p in range(h.page_start, h.page_end + 1)}
            if evidence & pages:
                finance_answerable.append(best_similarity(hits))
    candidates = sorted({round(value, 2) for value in answerable + unanswerable})
    table = []
    for threshold in candidates:
        false_refusals = sum(value < threshold for value in answerable) / len(answerable)
        refused = sum(value < threshold for value in unanswerable) / len(unanswerable)
        table.append({"threshold": threshold, "false_refusals": round(false_refusals, 4),
                      "off_topic_refused": round(refused, 4)})
    chosen = max((row for row in table if row["false_refusals"] <= args.max_false_refusals),
                 key=lambda row: row["threshold"])
    print(json.dumps({
        "answerable": len(answerable), "unanswerable": len(unanswerable),
        "answerable_similarity": {q: round(percentile(answerable, q), 3) for q in (0.01, 0.05, 0.5)},
        "unanswerable_similarity": {q: round(percentile(unanswerable, q), 3) for q in (0.5, 0.95, 0.99)},
        "chosen": chosen,
        "held_out_financebench": {
            "answerable": len(finance_answerable),
            "similarity": {q: round(percentile(finance_answerable, q), 3) for q in (0.01, 0.05, 0.5)},
            "false_refusals_at_chosen": round(
                sum(value < chosen["threshold"] for value in finance_answerable) / max(1, len(finance_answerable)), 4),
        },
        "table": [row for row in table if round(row["threshold"] * 100) % 5 == 0],
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
