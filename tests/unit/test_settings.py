from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.settings import load_settings, normalise_ollama_host


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9999", "http://127.0.0.1:9999"),
        ("gpu-box:11434", "http://gpu-box:11434"),
        ("https://ollama.internal/", "https://ollama.internal:11434"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_ollama_host_forms(given: str, expected: str) -> None:
    assert normalise_ollama_host(given) == expected


def test_flags_beat_environment_beat_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("OLLAMA_HOST", "otherhost")
    monkeypatch.setenv("ARCHIVIST_MODEL", "gpt-oss:120b")
    settings = load_settings(data_dir=tmp_path / "from-flag", effort=None)
    assert settings.data_dir == tmp_path / "from-flag"
    assert settings.ollama_host == "http://otherhost:11434"
    assert settings.model == "gpt-oss:120b"
    assert settings.effort == "medium"


def test_invalid_values_give_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_EFFORT", "extreme")
    with pytest.raises(ConfigError, match=r"^Invalid settings: effort: "):
        load_settings()


def test_pdf_passwords_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_PDF_PASSWORDS", '["hunter2", "s3cret"]')
    assert load_settings().pdf_passwords == ["hunter2", "s3cret"]
