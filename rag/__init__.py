"""Archivist's core: settings, errors, the index (catalog + vectors), retrieval, prompts, LLMs, answers."""

from rag import offline as _offline  # noqa: F401  (sets the offline switches before anything heavy loads)
