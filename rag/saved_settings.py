"""The settings the Settings page saves: a small JSON file in the data folder, read under flags and environment.

Only a few fields may be saved (the LLM connection, the model, the context size, the effort, PDF
passwords, which the Settings page edits) and the tuning sections (`retrieval`, `support`, `chunking`,
`context`, `research`: JSON objects naming some of their fields, written by hand, e.g.
`{"retrieval": {"per_document": 2}}`); everything
else stays a flag or an environment variable. The data folder itself can never be saved here: this file lives
inside it.

This module only reads and writes the file; `rag.settings` decides precedence and validates values.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from rag.errors import ConfigError

SAVED_SETTINGS_FILE = "settings.json"

# What the Settings page edits. Order is the page's order.
SAVABLE_FIELDS: tuple[str, ...] = (
    "llm",
    "ollama_host",
    "openai_base_url",
    "openai_api_key",
    "model",
    "num_ctx",
    "effort",
    "pdf_passwords",
)

# The sub-settings sections (rag.settings.SECTIONS) the file may hold, each a JSON object; kept when the
# Settings page saves.
SAVABLE_SECTIONS: tuple[str, ...] = ("retrieval", "support", "chunking", "context", "research")

Source = Literal["flag", "environment", "saved", "default"]


def saved_settings_path(data_dir: Path) -> Path:
    return data_dir / SAVED_SETTINGS_FILE


def read_saved(data_dir: Path) -> dict[str, object]:
    """The saved values ({} when nothing is saved); a damaged file is a ConfigError naming it."""
    path = saved_settings_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise ConfigError(f"Could not read the saved settings {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise ConfigError(f"The saved settings {path} are not valid JSON ({error}); fix or delete the file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"The saved settings {path} must hold a JSON object; fix or delete the file.")
    savable = (*SAVABLE_FIELDS, *SAVABLE_SECTIONS)
    unknown = sorted(set(data) - set(savable))
    if unknown:
        raise ConfigError(
            f"The saved settings {path} hold settings that cannot be saved: {', '.join(unknown)}; "
            f"only {', '.join(savable)} can."
        )
    for section in SAVABLE_SECTIONS:
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(
                f'The saved settings {path} must hold a JSON object under "{section}" (its fields and values); '
                "fix or delete the file."
            )
    return data


def write_saved(data_dir: Path, values: Mapping[str, object]) -> Path:
    """Replace the saved values, atomically (readers see the old file or the new one, never half of one).

    The file may hold PDF passwords and an API key in plain text, so it is created readable and writable
    by its owner only (0600), as ssh and netrc files are; the data folder is the user's own.
    """
    savable = (*SAVABLE_FIELDS, *SAVABLE_SECTIONS)
    unknown = sorted(set(values) - set(savable))
    if unknown:
        raise ConfigError(f"These settings cannot be saved: {', '.join(unknown)}; only {', '.join(savable)} can.")
    path = saved_settings_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ordered = {name: values[name] for name in savable if name in values}
    # O_CREAT with 0600: the secrets are never readable by others, not even between create and chmod.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(ordered, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)  # an older temporary file of the same name kept its own mode
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path
