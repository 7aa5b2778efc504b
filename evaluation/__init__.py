"""Archivist's evaluations (`archivist eval`): retrieval on BEIR corpora and FinanceBench, supporting quotes on
SciFact, each through the product's own ingest, search and answer-checking code. Depends on ingest and rag;
nothing in them depends on it. The offline fits that set the product's constants live under bench/."""
