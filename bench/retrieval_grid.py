"""Retrieval settings compared on SciFact through the product's own eval path (`evaluation.beir`).

Every configuration is scored on the train split only; the best one by its train nDCG@10 is then scored on
the test split, once. Test scores no other configuration, so nothing seen on test can steer a choice.
Chunking settings need their own index (cached in Archivist's cache folder, so a second run only searches);
retrieval settings are compared on one index.

    .venv/bin/python bench/retrieval_grid.py [--grid default|chunking] [--json FILE]

Prints a line per configuration (nDCG@10 and recall@100 on train) to stderr as it goes, then the chosen
configuration's test scores, and the whole result as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script

from evaluation.beir import BeirEvaluation  # noqa: E402
from evaluation.financebench import FinanceBenchEvaluation  # noqa: E402
from rag.search.retrieve import Mode, RetrievalSettings  # noqa: E402
from rag.settings import ChunkingSettings, Settings  # noqa: E402


@dataclass(frozen=True)
class Config:
    name: str
    mode: Mode = "hybrid"
    tuning: RetrievalSettings = field(default_factory=RetrievalSettings)
    chunking: tuple[int, int, float] | None = None  # (tokens, overlap, min_fill); None: the defaults


def retrieval_grid() -> list[Config]:
    """One index (default chunking), many retrieval settings: each arm, then one change at a time from the
    defaults (RRF constant and weights, convex fusion weights, candidate depth, BM25 column weights)."""
    base = RetrievalSettings()
    configs = [Config("dense", "dense"), Config("lexical", "lexical"), Config("hybrid (defaults)")]
    for k in (10, 30, 100):
        configs.append(Config(f"hybrid rrf_k={k}", tuning=replace(base, rrf_k=k)))
    for dense, lexical in ((1.0, 1.5), (1.5, 1.0)):
        configs.append(Config(f"hybrid rrf weights dense {dense} lexical {lexical}",
                              tuning=replace(base, dense_weight=dense, lexical_weight=lexical)))
    for alpha in (0.3, 0.5, 0.7):
        configs.append(Config(f"hybrid convex dense {alpha} lexical {round(1 - alpha, 1)}",
                              tuning=replace(base, fusion="convex", dense_weight=alpha, lexical_weight=1 - alpha)))
    for depth in (50, 200):
        configs.append(Config(f"hybrid depth {depth}", tuning=replace(base, dense_depth=depth, lexical_depth=depth)))
    configs.append(Config("hybrid bm25 column weights (1, 2, 1)", tuning=replace(base, bm25_weights=(1.0, 2.0, 1.0))))
    return configs


def followup_grid() -> list[Config]:
    """Second round around the best of the first on train (convex fusion, deeper candidate lists)."""
    base = RetrievalSettings()
    convex = replace(base, fusion="convex", dense_weight=0.5, lexical_weight=0.5)
    configs = [Config(f"hybrid convex dense {alpha} lexical {round(1 - alpha, 1)}",
                      tuning=replace(convex, dense_weight=alpha, lexical_weight=round(1 - alpha, 1)))
               for alpha in (0.4, 0.6)]
    deeper = {"dense_depth": 200, "lexical_depth": 200}
    configs.append(Config("hybrid convex 0.5/0.5, depth 200", tuning=replace(convex, **deeper)))  # type: ignore[arg-type]
    configs.append(Config("hybrid rrf_k=10, depth 200", tuning=replace(base, rrf_k=10, **deeper)))  # type: ignore[arg-type]
    return configs


def chunking_grid() -> list[Config]:
    """The chunk size (each needs its own index), each with default retrieval settings and each arm alone."""
    configs = []
    for chunking in ((200, 32, 0.3), (200, 32, 0.6), (256, 32, 0.6), (256, 32, 0.8)):
        for mode in ("dense", "lexical", "hybrid"):
            name = f"{mode}, chunks of {chunking[0]} tokens, overlap {chunking[1]}, min fill {chunking[2]}"
            configs.append(Config(name, mode, chunking=chunking))  # type: ignore[arg-type]
    return configs


def defaults_grid() -> list[Config]:
    """The default settings: each arm alone and hybrid."""
    return [Config(f"{mode} (defaults)", mode) for mode in ("dense", "lexical", "hybrid")]  # type: ignore[arg-type]


def financebench_grid() -> list[Config]:
    """FinanceBench (no train split: these are reported, not tuned on): each arm and hybrid, with and
    without searching the files a question names first."""
    off = replace(RetrievalSettings(), named_document_terms=0)
    return [*defaults_grid(), Config("lexical, named files not searched first", "lexical", off),
            Config("hybrid, named files not searched first", "hybrid", off)]


GRIDS = {"default": retrieval_grid, "followup": followup_grid, "chunking": chunking_grid,
         "defaults": defaults_grid,
         "financebench": financebench_grid}


def run_financebench(folder: Path, configs: list[Config]) -> list[dict[str, Any]]:
    rows = []
    with FinanceBenchEvaluation(folder, Settings()) as evaluation:
        for config in configs:
            result = evaluation.score(config.mode, config.tuning)
            rows.append({"config": config.name, "mode": config.mode, "tuning": asdict(config.tuning), "result": result})
            print(f"{config.name:60s} page_hit@5 {result['page_hit@5']:.4f}  page_recall@5 "
                  f"{result['page_recall@5']:.4f}  page_recall@10 {result['page_recall@10']:.4f}  doc_hit@5 "
                  f"{result['doc_hit@5']:.4f}", file=sys.stderr, flush=True)
    return rows


def _settings(chunking: tuple[int, int, float] | None) -> Settings:
    if chunking is None:
        return Settings()
    return Settings(chunking=ChunkingSettings(tokens=chunking[0], overlap_tokens=chunking[1], min_fill=chunking[2]))


def run(folder: Path, configs: list[Config]) -> list[dict[str, Any]]:
    """Every configuration on train (one index per chunking)."""
    rows: list[dict[str, Any]] = []
    by_chunking: dict[tuple[int, int, float] | None, list[Config]] = {}
    for config in configs:
        by_chunking.setdefault(config.chunking, []).append(config)
    for chunking, group in by_chunking.items():
        settings = _settings(chunking)
        started = time.perf_counter()
        with BeirEvaluation(folder, settings) as evaluation:
            print(f"index ready in {time.perf_counter() - started:.0f} s: {evaluation.data_dir}", file=sys.stderr)
            for config in group:
                train = evaluation.score("train", config.mode, config.tuning)
                row = {"config": config.name, "mode": config.mode, "tuning": asdict(config.tuning),
                       "chunking": asdict(settings.chunking), "train": train}
                rows.append(row)
                print(f"{config.name:60s} train nDCG@10 {train['ndcg@10']:.4f}  train recall@100 "
                      f"{train['recall@100']:.4f}  p50 {train['latency_ms']['p50']} ms",  # type: ignore[index]
                      file=sys.stderr, flush=True)
    return rows


def score_chosen_on_test(folder: Path, configs: list[Config], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The configuration with the best train nDCG@10, scored on test: the only test score the grid computes."""
    best = max(rows, key=lambda row: row["train"]["ndcg@10"])
    config = next(c for c in configs if c.name == best["config"])
    with BeirEvaluation(folder, _settings(config.chunking)) as evaluation:
        test = evaluation.score("test", config.mode, config.tuning)
    print(f"chosen on train: {config.name}: test nDCG@10 {test['ndcg@10']:.4f}  test recall@100 "
          f"{test['recall@100']:.4f}", file=sys.stderr, flush=True)
    return {**best, "test": test}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args()
    shared = Path(os.environ.get("ARCHIVIST_SHARED_DATA") or REPO.parent / "shared" / "data")
    if args.grid == "financebench":
        fb_rows = run_financebench(shared / "financebench", financebench_grid())
        text = json.dumps({"grid": "financebench", "configs": fb_rows}, indent=2)
        if args.json:
            args.json.write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0
    folder = shared / "scifact"
    if not (folder / "corpus.jsonl").is_file():
        print(f"bench/retrieval_grid.py: SciFact is absent under {shared}.", file=sys.stderr)
        return 2
    configs = GRIDS[args.grid]()
    rows = run(folder, configs)
    chosen = score_chosen_on_test(folder, configs, rows)
    output = {"grid": args.grid, "chosen_on_train": chosen["config"], "chosen": chosen, "configs": rows}
    text = json.dumps(output, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
