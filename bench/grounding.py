"""How long checking an answer takes once the model has finished: `ground_sentences` + `citations_for`.

Each trial is one answer of `--sentences` sentences over `--passages` passages (SciFact abstracts, cut to
about the length of a chunk), every sentence citing one passage, with a fresh `SupportScorer` as `ask` makes
one per answer. The baseline, in the same run, picks each quote by the embedding cosine alone (the
sentences embedded in one call, no word vectors), which is what the issue's 0.37 accuracy@1 measures.

    python bench/grounding.py [--trials 20] [--passages 6] [--sentences 4]

Prints JSON: p50/p95 milliseconds per answer for both, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script; bench/ingest.py would shadow the ingest package

import numpy as np  # noqa: E402

from evaluation.metrics import percentile  # noqa: E402
from rag import offline  # noqa: E402, F401  (before anything heavy)
from rag.answer.grounding import citations_for, ground_sentences  # noqa: E402
from rag.answer.sentences import split_sentences  # noqa: E402
from rag.answer.support import SupportScorer  # noqa: E402
from rag.factory import make_embedder  # noqa: E402
from rag.index.embedder import Embedder  # noqa: E402
from rag.records import Hit  # noqa: E402
from rag.settings import load_settings  # noqa: E402

SHARED = Path.cwd().parent / "shared" / "data"
CHUNK_CHARACTERS = 1100  # about 200 MiniLM tokens of English prose


def cosine_only(embedder: Embedder, claims: list[str], passages: list[str]) -> None:
    """The baseline: every sentence of the passages and every claim embedded in one call, best cosine."""
    sentences = [sentence.text for passage in passages for sentence in split_sentences(passage)]
    vectors = embedder.embed([*claims, *sentences])
    claim_vectors, sentence_vectors = vectors[: len(claims)], vectors[len(claims):]
    np.argmax(claim_vectors @ sentence_vectors.T, axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--passages", type=int, default=6)
    parser.add_argument("--sentences", type=int, default=4)
    args = parser.parse_args()
    corpus = [json.loads(line) for line in (args.data / "scifact" / "corpus.jsonl").open(encoding="utf-8")]
    abstracts = [record["text"][:CHUNK_CHARACTERS] for record in corpus if len(record["text"]) > 600]
    random.seed(7)
    embedder = make_embedder(load_settings())
    embedder.embed(["warm up the model"])
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(args.trials):
        passages = random.sample(abstracts, args.passages)
        hits = [Hit(rank=n, score=1.0, path=f"/bench/{n}.txt", page_start=1, page_end=1, chunk_id=f"c{n}", text=text)
                for n, text in enumerate(passages, start=1)]
        claims = [split_sentences(passages[i % len(passages)])[1].text for i in range(args.sentences)]
        answer = " ".join(f"{claim} [{i % len(passages) + 1}]" for i, claim in enumerate(claims))
        started = time.perf_counter()
        scorer = SupportScorer(embedder)
        citations_for(ground_sentences(answer, hits, scorer), hits, scorer)
        ours.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        cosine_only(embedder, claims, passages)
        baseline.append((time.perf_counter() - started) * 1000)
    summary = {
        "trials": args.trials, "passages": args.passages, "sentences": args.sentences,
        "archivist_ms": {"p50": round(percentile(ours, 0.5), 1), "p95": round(percentile(ours, 0.95), 1)},
        "cosine_only_baseline_ms": {"p50": round(percentile(baseline, 0.5), 1),
                                    "p95": round(percentile(baseline, 0.95), 1)},
    }
    summary["ratio_p50"] = round(percentile(ours, 0.5) / max(percentile(baseline, 0.5), 1e-9), 2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
