"""The one settings object: every tunable value, its default, and where the environment is read.

Precedence: explicit keyword arguments (command-line flags) > environment variables > the settings saved
from the Settings page (`settings.json` in the data folder, see rag/saved_settings.py) > defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError
from rag.saved_settings import SAVABLE_FIELDS, Source, read_saved, saved_settings_path, write_saved

Effort = Literal["low", "medium", "high"]

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_MODEL = "gpt-oss:20b"
DEFAULT_OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"  # vLLM's default; LM Studio uses :1234, llama.cpp :8080


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("archivist", appauthor=False))


def normalise_ollama_host(value: str) -> str:
    """Accept the forms Ollama itself accepts for OLLAMA_HOST: `host`, `host:port`, or a full URL."""
    value = value.strip().rstrip("/")
    if not value:
        return DEFAULT_OLLAMA_HOST
    if "://" not in value:
        value = "http://" + value
    scheme, rest = value.split("://", 1)
    host = rest.split("/", 1)[0]
    if host.startswith("0.0.0.0"):  # a bind address, not a destination: Ollama's own client does the same
        host = "127.0.0.1" + host[len("0.0.0.0") :]
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":11434"
    return f"{scheme}://{host}"


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """`http://host:port` or `https://host[:port]` as (host, port, ssl); a ConfigError says what is wrong."""
    problem = f"ARCHIVIST_CHROMA_URL={url!r} is not a Chroma server address like http://127.0.0.1:8000"
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(problem)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    ssl = parts.scheme == "https"
    return parts.hostname, port if port is not None else (443 if ssl else 8000), ssl


class Settings(BaseSettings):
    """Everything Archivist can be told. Each field names its environment variable."""

    model_config = SettingsConfigDict(env_prefix="ARCHIVIST_", extra="ignore", validate_default=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder holding the index (catalog, vectors). ARCHIVIST_DATA_DIR.",
    )
    chroma_url: str | None = Field(
        None,
        description="A Chroma server (e.g. http://chroma:8000) to hold the vectors instead of the data folder; "
        "the catalog stays local. ARCHIVIST_CHROMA_URL.",
    )
    # LLM
    llm: Literal["ollama", "openai"] = Field(
        "ollama",
        description="Which kind of server answers: ollama (default) or any OpenAI-compatible server (vLLM, "
        "LM Studio, llama.cpp's server). ARCHIVIST_LLM.",
    )
    openai_base_url: str = Field(
        DEFAULT_OPENAI_BASE_URL,
        description="Base URL of the OpenAI-compatible server, up to and including /v1. "
        "ARCHIVIST_OPENAI_BASE_URL.",
    )
    openai_api_key: str | None = Field(
        None, description="Bearer token for an OpenAI-compatible server that asks for one. ARCHIVIST_OPENAI_API_KEY."
    )
    ollama_host: str = Field(
        DEFAULT_OLLAMA_HOST,
        validation_alias=AliasChoices("OLLAMA_HOST", "ARCHIVIST_OLLAMA_HOST"),
        description="Where Ollama listens. OLLAMA_HOST, as Ollama's own tools read it.",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="Model name: an Ollama tag, or the name an OpenAI-compatible server serves "
        "(e.g. openai/gpt-oss-120b on vLLM). ARCHIVIST_MODEL.",
    )
    effort: Effort = Field("medium", description="gpt-oss reasoning effort. ARCHIVIST_EFFORT.")
    num_ctx: int = Field(16384, ge=2048, description="Context window sent on every request.")
    num_predict: int = Field(
        4096, ge=64, description="Cap on generated tokens (reasoning + answer); stops reasoning loops."
    )
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="gpt-oss recommends 1.0.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="gpt-oss recommends 1.0.")
    llm_timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for the LLM to respond.")
    # Retrieval
    sources: int = Field(6, ge=1, le=50, description="Passages given to the LLM per question.")
    search_k: int = Field(10, ge=1, le=1000, description="Hits `archivist search` shows by default.")
    min_relevance: float = Field(
        0.41, ge=-1.0, le=1.0,
        description="When no passage found reaches this cosine similarity to the question, `ask` replies "
        "\"not in your documents\" with the nearest passages and does not call the LLM (0 or less: always "
        "ask). Tuned on SciFact train. ARCHIVIST_MIN_RELEVANCE.",
    )
    # Ingest
    chunk_tokens: int = Field(200, ge=32, le=256, description="Chunk size in embedding-model tokens.")
    chunk_overlap_tokens: int = Field(32, ge=0, le=128, description="Tokens repeated between chunks.")
    chunk_min_fill: float = Field(
        0.3, ge=0.0, le=1.0,
        description="Share of chunk_tokens a chunk holds before a content-defined boundary may end it: higher "
        "gives fuller chunks, lower keeps an edit's re-embedding more local.",
    )
    max_file_mb: float = Field(200.0, gt=0, description="Larger files are skipped.")
    parse_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Longest time reading one file may take; the file then fails with a reason. "
        "ARCHIVIST_PARSE_TIMEOUT_S.",
    )
    parse_memory_mb: int = Field(
        1536,
        ge=512,  # the reading process itself, with its libraries, takes about 250 MB of address space
        description="Most memory reading one file may use (the reading process's address space); the file "
        "then fails with a reason. ARCHIVIST_PARSE_MEMORY_MB.",
    )
    parse_isolation: bool = Field(
        True,
        description="Read files in a separate, reused process so the time and memory limits can be enforced "
        "and no file can take the rest down. Turn off only to debug a parser. ARCHIVIST_PARSE_ISOLATION.",
    )
    pdf_passwords: list[str] = Field(
        default_factory=list, description="Passwords tried on encrypted PDFs (the empty one always is)."
    )
    embed_batch_size: int = Field(64, ge=1, description="Texts per embedding batch.")
    commit_chunks: int = Field(
        500, ge=16, le=100_000,
        description="A file of more chunks is committed in parts of this many: an interruption loses at most "
        "one part, and the next run goes on from there.",
    )
    follow_symlinks: bool = Field(
        False, description="Index files and folders behind symbolic links (loops are detected and skipped)."
    )
    embedding_model_dir: Path | None = Field(
        None, description="Folder of a sentence-transformers model; default: the packaged all-MiniLM-L6-v2."
    )
    embedding_backend: Literal["int8", "torch"] = Field(
        "int8",
        description="What runs the embedding model: int8 (ONNX Runtime on an int8 copy made locally, about "
        "twice as fast) or torch (fp32, the reference). Each has its own vector collection. "
        "ARCHIVIST_EMBEDDING_BACKEND.",
    )
    embedding_cache_dir: Path | None = Field(
        None,
        description="Folder for model files derived locally (the int8 copy); default: the user cache folder. "
        "ARCHIVIST_EMBEDDING_CACHE_DIR.",
    )
    embedding_threads: int | None = Field(
        None, ge=1, description="Threads the embedding model may use; default: every core this process may use."
    )

    # The page (ui/guard.py)
    allowed_hosts: str = Field(
        "",
        description="Comma-separated extra names the page answers to, as the browser writes them in the "
        "address bar: `name` (any port) or `name:port`, e.g. `archivist.lan,192.168.1.5:8501`. Loopback "
        "names (127.0.0.1, localhost, [::1]) on the page's port are always allowed; any other Host or "
        "Origin is refused, which defeats DNS rebinding. Needed when binding to 0.0.0.0 (e.g. in docker) "
        "and browsing by another name. ARCHIVIST_ALLOWED_HOSTS.",
    )
    access_token: SecretStr | None = Field(
        None,
        description="When set, the page asks for this token: open it once as `http://HOST:PORT/?token=...` "
        "(then remembered in a cookie) or send `Authorization: Bearer ...`. ARCHIVIST_ACCESS_TOKEN.",
    )

    @field_validator("ollama_host")
    @classmethod
    def _normalise_host(cls, value: str) -> str:
        return normalise_ollama_host(value)

    @field_validator("chroma_url")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            parse_chroma_url(value)
        except ConfigError:
            raise ValueError("not a Chroma server address like http://127.0.0.1:8000") from None
        return value.strip().rstrip("/")

    @field_validator("data_dir", "embedding_model_dir", "embedding_cache_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


def load_settings(**overrides: object) -> Settings:
    """Build the settings: command-line values (not None) > environment > saved settings > defaults."""
    return load_settings_with_sources(**overrides)[0]


def setting_sources(**overrides: object) -> dict[str, Source]:
    """For every field, where its value comes from: "flag", "environment", "saved" or "default"."""
    return load_settings_with_sources(**overrides)[1]


def load_settings_with_sources(**overrides: object) -> tuple[Settings, dict[str, Source]]:
    """The settings (as `load_settings`) and, for every field, where its value came from."""
    given = {key: value for key, value in overrides.items() if value is not None}
    # First without the saved file: the data folder, which holds that file, comes from flag, environment or
    # default only. pydantic-settings counts a field read from the environment as set.
    base = _build(given, "Invalid settings")
    saved = read_saved(base.data_dir)
    from_saved = {key: value for key, value in saved.items() if key not in base.model_fields_set}
    settings = base
    if from_saved:
        # Passed as keyword arguments, which pydantic-settings ranks above the environment: hence only the
        # fields neither a flag nor the environment set.
        settings = _build(
            {**from_saved, **given},
            f"Invalid saved setting in {saved_settings_path(base.data_dir)} (change it on the Settings page, "
            "or edit or delete the file)",
        )
    sources: dict[str, Source] = {}
    for name in Settings.model_fields:
        if name in given:
            sources[name] = "flag"
        elif name in from_saved:
            sources[name] = "saved"
        elif name in base.model_fields_set:
            sources[name] = "environment"
        else:
            sources[name] = "default"
    return settings, sources


def save_settings(data_dir: Path, changes: Mapping[str, object]) -> dict[str, object]:
    """Merge `changes` into the saved settings of `data_dir` and write them; a None value forgets a field
    (back to its default). Values are validated first (ConfigError naming the field) and stored as validated
    (e.g. OLLAMA_HOST normalised). Returns everything now saved. Flags and environment variables still win."""
    unknown = sorted(set(changes) - set(SAVABLE_FIELDS))
    if unknown:
        raise ConfigError(
            f"These settings cannot be saved: {', '.join(unknown)}; only {', '.join(SAVABLE_FIELDS)} can."
        )
    merged = dict(read_saved(data_dir))
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    validated = _build({**merged, "data_dir": data_dir}, "Invalid settings").model_dump(mode="json")
    values = {name: validated[name] for name in SAVABLE_FIELDS if name in merged}
    write_saved(data_dir, values)
    return values


def _build(values: Mapping[str, object], problem: str) -> Settings:
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigError(f"{problem}: {problems}") from None
