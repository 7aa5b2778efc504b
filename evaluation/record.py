"""What every evaluation result carries besides its figures, so that two numbers can be compared: under
`settings`, the full settings it ran with (secrets left out) and the embedding model; under `machine`, the CPU,
its flags and the package versions (`evaluation.machine`)."""

from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass
from typing import Any

from evaluation.machine import machine_facts
from rag.index.embedder import model_name_for, packaged_model_dir
from rag.settings import Settings

# Settings whose values are credentials: recorded only as set or not, since results get pasted into issues.
# (By name: `openai_api_key`, `access_token`, `pdf_passwords`; not `tokens`.)
_SECRET = re.compile(r"(^|_)(api_?key|key|token|secret|passwords?)$", re.IGNORECASE)
REDACTED = "(set, not recorded)"


def redact(value: Any, name: str = "") -> Any:
    """`value` with every credential-like field (by its name, at any depth) replaced by `REDACTED`."""
    if isinstance(value, dict):
        return {key: redact(item, str(key)) for key, item in value.items()}
    if _SECRET.search(name) and value not in (None, "", [], ()):
        return REDACTED
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def settings_record(settings: Settings, **extra: Any) -> dict[str, Any]:
    """The settings as JSON values (secrets redacted), the embedding model actually used, and `extra` (e.g. the
    retrieval tuning and mode of one run; dataclasses are turned into dicts)."""
    recorded: dict[str, Any] = redact(settings.model_dump(mode="json"))
    model_dir = settings.embedding_model_dir or packaged_model_dir()
    recorded["embedding_model"] = {"name": model_name_for(settings.embedding_model_dir, settings.embedding_backend),
                                   "dir": str(model_dir), "backend": settings.embedding_backend}
    for key, value in extra.items():
        recorded[key] = asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    return recorded


def run_record(settings: Settings, **extra: Any) -> dict[str, Any]:
    """`{"settings": ..., "machine": ...}`, to merge into a result."""
    return {"settings": settings_record(settings, **extra), "machine": machine_facts()}
