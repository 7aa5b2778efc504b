"""Settings saved from the Settings page: flags > environment > saved > defaults, and where each came from."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.saved_settings import SAVED_SETTINGS_FILE, read_saved, write_saved
from rag.settings import load_settings, load_settings_with_sources, save_settings, setting_sources


@pytest.fixture
def data_dir(isolated_data_dir: Path) -> Path:
    return isolated_data_dir  # ARCHIVIST_DATA_DIR points here


def test_nothing_saved_changes_nothing(data_dir: Path) -> None:
    settings, sources = load_settings_with_sources()
    assert settings.model == "gpt-oss:20b"
    assert sources["model"] == "default" and sources["data_dir"] == "environment"
    assert not (data_dir / SAVED_SETTINGS_FILE).exists()


def test_flag_beats_environment_beats_saved_beats_default(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    save_settings(data_dir, {"model": "saved-model", "effort": "high", "num_ctx": 8192, "llm": "openai"})
    monkeypatch.setenv("ARCHIVIST_EFFORT", "low")
    monkeypatch.setenv("ARCHIVIST_NUM_CTX", "4096")

    settings = load_settings(num_ctx=32768)

    assert (settings.model, settings.effort, settings.num_ctx, settings.llm) == ("saved-model", "low", 32768, "openai")
    assert settings.ollama_host == "http://127.0.0.1:11434"
    sources = setting_sources(num_ctx=32768)
    assert {name: sources[name] for name in ("num_ctx", "effort", "model", "llm", "ollama_host")} == {
        "num_ctx": "flag", "effort": "environment", "model": "saved", "llm": "saved", "ollama_host": "default",
    }


def test_a_none_flag_is_no_flag(data_dir: Path) -> None:
    save_settings(data_dir, {"effort": "high"})
    settings, sources = load_settings_with_sources(effort=None)
    assert settings.effort == "high" and sources["effort"] == "saved"


def test_the_data_folder_never_comes_from_the_saved_file(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / SAVED_SETTINGS_FILE).write_text(json.dumps({"data_dir": str(tmp_path / "elsewhere")}))
    with pytest.raises(ConfigError, match="cannot be saved: data_dir"):
        load_settings()
    with pytest.raises(ConfigError, match="cannot be saved: data_dir"):
        save_settings(data_dir, {"data_dir": str(tmp_path)})


def test_the_saved_file_is_read_from_the_flagged_data_folder(data_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-data"
    save_settings(other, {"model": "only-in-other"})
    assert load_settings().model == "gpt-oss:20b"
    assert load_settings(data_dir=other).model == "only-in-other"


def test_values_are_validated_and_stored_as_validated(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Invalid settings: num_ctx: Input should be greater than or equal to 2048"):
        save_settings(data_dir, {"num_ctx": 100})
    with pytest.raises(ConfigError, match=r"effort: Input should be 'low', 'medium' or 'high'"):
        save_settings(data_dir, {"effort": "extreme"})
    assert not (data_dir / SAVED_SETTINGS_FILE).exists()  # nothing written by a refused save

    saved = save_settings(data_dir, {"ollama_host": "gpu-box", "num_ctx": "8192"})

    assert saved == {"ollama_host": "http://gpu-box:11434", "num_ctx": 8192}
    assert read_saved(data_dir) == saved


def test_none_forgets_a_saved_value(data_dir: Path) -> None:
    save_settings(data_dir, {"model": "a", "effort": "low"})
    assert save_settings(data_dir, {"model": None}) == {"effort": "low"}
    assert load_settings_with_sources()[1]["model"] == "default"


def test_passwords_are_kept_owner_only(data_dir: Path) -> None:
    save_settings(data_dir, {"pdf_passwords": ["hunter2"], "openai_api_key": "sk-local"})

    path = data_dir / SAVED_SETTINGS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"openai_api_key": "sk-local", "pdf_passwords": ["hunter2"]}
    assert load_settings().pdf_passwords == ["hunter2"]
    assert [p.name for p in data_dir.iterdir()] == [SAVED_SETTINGS_FILE]  # no temporary file left behind


def test_an_invalid_saved_value_names_the_file_and_the_field(data_dir: Path) -> None:
    write_saved(data_dir, {"num_ctx": 10})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"Invalid saved setting in {data_dir / SAVED_SETTINGS_FILE}")
    assert "num_ctx: Input should be greater than or equal to 2048" in message


def test_an_environment_variable_hides_an_invalid_saved_value(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_saved(data_dir, {"num_ctx": 10})
    monkeypatch.setenv("ARCHIVIST_NUM_CTX", "4096")
    assert load_settings().num_ctx == 4096


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_a_damaged_file_is_a_clear_error(data_dir: Path, content: str, expected: str) -> None:
    (data_dir / SAVED_SETTINGS_FILE).write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_settings()
