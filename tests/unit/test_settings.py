from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from rag.errors import ConfigError
from rag.saved_settings import SAVABLE_SECTIONS, SAVED_SETTINGS_FILE
from rag.settings import (
    SECTIONS,
    ChunkingSettings,
    RetrievalSettings,
    Settings,
    env_name,
    load_settings,
    load_settings_with_sources,
    normalise_ollama_host,
    save_settings,
    section_fields,
)


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


# ----- the sub-settings: retrieval, support, chunking -----

# For every field of every section: a value other than its default, as an environment variable spells it, and as
# it reads back. test_every_section_field_has_a_case keeps this complete.
NON_DEFAULT: dict[str, tuple[str, object]] = {
    "retrieval.fusion": ("rrf", "rrf"),
    "retrieval.rrf_k": ("30", 30.0),
    "retrieval.dense_depth": ("50", 50),
    "retrieval.lexical_depth": ("60", 60),
    "retrieval.dense_weight": ("0.7", 0.7),
    "retrieval.lexical_weight": ("0.3", 0.3),
    "retrieval.bm25_weights": ("[1, 2, 0.5]", (1.0, 2.0, 0.5)),
    "retrieval.per_document": ("1", 1),
    "retrieval.drop_stop_words": ("false", False),
    "retrieval.named_document_terms": ("0", 0),
    "support.threshold": ("0.5", 0.5),
    "support.heading_penalty": ("1.5", 1.5),
    "support.heading_max_words": ("8", 8),
    "chunking.tokens": ("128", 128),
    "chunking.overlap_tokens": ("16", 16),
    "chunking.min_fill": ("0.5", 0.5),
    "chunking.anchor_one_in": ("5", 5),
    "context.share": ("0.3", 0.3),
    "context.candidates": ("40", 40),
    "context.merge_neighbours": ("false", False),
    "research.mode": ("quick", "quick"),
    "research.max_steps": ("3", 3),
    "research.context_share": ("0.3", 0.3),
    "research.max_seconds": ("90", 90.0),
    "research.result_passages": ("5", 5),
    "research.page_lines": ("40", 40),
    "research.sandbox_cpu_seconds": ("2", 2.0),
    "research.sandbox_memory_mb": ("128", 128),
    "research.sandbox_output_chars": ("1000", 1000),
}


def value_of(settings: Settings, dotted: str) -> object:
    section, name = dotted.split(".")
    return getattr(getattr(settings, section), name)


def test_every_section_field_has_a_case() -> None:
    assert set(NON_DEFAULT) == {f"{section}.{name}" for section in SECTIONS for name in section_fields(section)}
    defaults = Settings()
    assert all(value_of(defaults, name) != expected for name, (_, expected) in NON_DEFAULT.items())


def test_the_sections_are_the_ones_the_settings_file_may_hold() -> None:
    assert set(SECTIONS) == set(SAVABLE_SECTIONS)
    assert {name for name, field in Settings.model_fields.items() if field.annotation in SECTIONS.values()} == set(
        SECTIONS
    )


@pytest.mark.parametrize("dotted", sorted(NON_DEFAULT))
def test_each_sub_setting_is_read_from_the_environment(dotted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text, expected = NON_DEFAULT[dotted]
    monkeypatch.setenv(env_name(dotted), text)
    assert env_name(dotted) == "ARCHIVIST_" + dotted.upper().replace(".", "__")
    settings, sources = load_settings_with_sources()
    assert value_of(settings, dotted) == expected
    assert sources[dotted] == "environment"
    untouched = [name for name in NON_DEFAULT if name != dotted]
    assert all(sources[name] == "default" for name in untouched)


@pytest.mark.parametrize("dotted", sorted(NON_DEFAULT))
def test_each_sub_setting_is_read_from_the_settings_file(dotted: str, isolated_data_dir: Path) -> None:
    section, name = dotted.split(".")
    text, expected = NON_DEFAULT[dotted]
    value = text if isinstance(expected, str) else json.loads(text)
    (isolated_data_dir / SAVED_SETTINGS_FILE).write_text(json.dumps({section: {name: value}}))
    settings, sources = load_settings_with_sources()
    assert value_of(settings, dotted) == expected
    assert sources[dotted] == "saved"


def test_a_section_is_merged_field_by_field(monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path) -> None:
    (isolated_data_dir / SAVED_SETTINGS_FILE).write_text(
        json.dumps({"retrieval": {"rrf_k": 10, "per_document": 2, "fusion": "rrf"}})
    )
    monkeypatch.setenv("ARCHIVIST_RETRIEVAL__RRF_K", "30")

    settings, sources = load_settings_with_sources(retrieval={"fusion": "convex"})

    assert (settings.retrieval.rrf_k, settings.retrieval.per_document, settings.retrieval.fusion) == (30, 2, "convex")
    assert settings.retrieval.dense_depth == 200
    assert [sources[f"retrieval.{name}"] for name in ("fusion", "rrf_k", "per_document", "dense_depth")] == [
        "flag", "environment", "saved", "default",
    ]


def test_a_whole_section_in_one_variable_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_SUPPORT", '{"threshold": 0.4, "heading_penalty": 2}')
    support = load_settings().support
    assert (support.threshold, support.heading_penalty, support.heading_max_words) == (0.4, 2.0, 12)


def test_an_unknown_field_in_a_section_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, isolated_data_dir: Path
) -> None:
    monkeypatch.setenv("ARCHIVIST_RETRIEVAL__RRFK", "30")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == (
        "Invalid settings: retrieval.rrfk: no such setting; the retrieval settings are fusion, rrf_k, dense_depth, "
        "lexical_depth, dense_weight, lexical_weight, bm25_weights, per_document, drop_stop_words, "
        "named_document_terms"
    )
    monkeypatch.delenv("ARCHIVIST_RETRIEVAL__RRFK")
    (isolated_data_dir / SAVED_SETTINGS_FILE).write_text(json.dumps({"chunking": {"size": 100}}))
    with pytest.raises(ConfigError, match=r"^Invalid saved setting in .*settings\.json.*: chunking\.size: no such "
                                          r"setting; the chunking settings are tokens, overlap_tokens, min_fill, "
                                          r"anchor_one_in$"):
        load_settings()


def test_an_unknown_section_or_a_section_that_is_not_an_object_is_refused(isolated_data_dir: Path) -> None:
    path = isolated_data_dir / SAVED_SETTINGS_FILE
    path.write_text(json.dumps({"ranking": {"rrf_k": 3}}))
    with pytest.raises(ConfigError, match="cannot be saved: ranking"):
        load_settings()
    path.write_text(json.dumps({"support": 0.5}))
    with pytest.raises(ConfigError, match='must hold a JSON object under "support"'):
        load_settings()


def test_invalid_section_values_name_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_SUPPORT__THRESHOLD", "2")
    with pytest.raises(ConfigError, match=r"^Invalid settings: support\.threshold: Input should be less than 1$"):
        load_settings()
    monkeypatch.setenv("ARCHIVIST_SUPPORT", "{not json")
    with pytest.raises(ConfigError, match=r'^Invalid settings: error parsing value for field "support"'):
        load_settings()


def test_sub_settings_are_validated_when_made_in_code() -> None:
    with pytest.raises(ValidationError):
        RetrievalSettings(per_document=0)
    with pytest.raises(ValidationError):
        ChunkingSettings(tokens=1000)
    tuned = dataclasses.replace(RetrievalSettings(), rrf_k=10)  # frozen records, replaced as dataclasses are
    assert tuned.rrf_k == 10 and RetrievalSettings().rrf_k == 60


def test_the_older_chunking_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_CHUNK_TOKENS", "100")
    monkeypatch.setenv("ARCHIVIST_CHUNK_MIN_FILL", "0.5")
    monkeypatch.setenv("ARCHIVIST_CHUNKING__MIN_FILL", "0.6")  # the new name wins
    settings, sources = load_settings_with_sources(chunk_overlap_tokens=8)
    assert (settings.chunking.tokens, settings.chunking.min_fill, settings.chunking.overlap_tokens) == (100, 0.6, 8)
    assert (sources["chunking.tokens"], sources["chunking.overlap_tokens"]) == ("environment", "flag")


def test_saving_from_the_page_keeps_the_sections_written_by_hand(isolated_data_dir: Path) -> None:
    path = isolated_data_dir / SAVED_SETTINGS_FILE
    path.write_text(json.dumps({"support": {"threshold": 0.25}}))
    assert save_settings(isolated_data_dir, {"model": "m"}) == {"model": "m", "support": {"threshold": 0.25}}
    assert save_settings(isolated_data_dir, {"retrieval": {"per_document": "2"}})["retrieval"] == {"per_document": 2}
    assert load_settings().retrieval.per_document == 2 and load_settings().support.threshold == 0.25
    with pytest.raises(ConfigError, match=r"support\.threshold: Input should be greater than 0"):
        save_settings(isolated_data_dir, {"support": {"threshold": 0}})
    assert save_settings(isolated_data_dir, {"support": None}) == {"model": "m", "retrieval": {"per_document": 2}}


def descriptions(model: type[Any], prefix: str = "") -> dict[str, str | None]:
    """Every field of the settings tree by dotted name, with its description, walking into sub-settings."""
    fields = model.model_fields if issubclass(model, BaseModel) else model.__pydantic_fields__
    found: dict[str, str | None] = {}
    for name, field in fields.items():
        found[prefix + name] = field.description
        if dataclasses.is_dataclass(field.annotation):
            found.update(descriptions(field.annotation, f"{prefix}{name}."))
    return found


def test_every_setting_in_the_tree_has_a_description() -> None:
    found = descriptions(Settings)
    assert {"retrieval", "retrieval.rrf_k", "support.heading_penalty", "chunking.min_fill"} <= set(found)
    assert set(NON_DEFAULT) <= set(found)
    assert [name for name, text in found.items() if not (text and text.strip())] == []
