"""The one settings object: every tunable value, its default, and where the environment is read.

Precedence: explicit keyword arguments (command-line flags) > environment variables > the settings saved
from the Settings page (`settings.json` in the data folder, see rag/saved_settings.py) > defaults.

The tuning of search, of the support check and of chunking are sub-settings (`settings.retrieval.rrf_k`,
...). Each of their fields is read from `ARCHIVIST_<SECTION>__<FIELD>` (e.g. ARCHIVIST_RETRIEVAL__RRF_K=30; two
underscores, since field names hold one) or from the section of that name in the settings file
(`{"retrieval": {"rrf_k": 30}}`), field by field. Their defaults live here and nowhere else: the modules
that use them take the sub-settings as an argument.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from rag.errors import ConfigError
from rag.records import Effort
from rag.saved_settings import SAVABLE_FIELDS, SAVABLE_SECTIONS, Source, read_saved, saved_settings_path, write_saved

Fusion = Literal["rrf", "convex"]
ENV_PREFIX = "ARCHIVIST_"
ENV_NESTED_DELIMITER = "__"

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

# The sub-settings are frozen pydantic dataclasses: validated wherever they are made (the environment, the
# settings file, or code such as `RetrievalSettings(per_document=1)`), and `dataclasses.replace` works on them.
# An unknown field is an error, not silently ignored: a misspelt ARCHIVIST_RETRIEVAL__RRFK would else do nothing.
_SECTION_CONFIG = ConfigDict(extra="forbid")

@dataclass(frozen=True, config=_SECTION_CONFIG)
class RetrievalSettings:
    """How search weighs its arms. Defaults chosen on SciFact train (see README, Retrieval)."""

    # On SciFact train, convex 0.5/0.5 over 200 candidates per arm scored nDCG@10 0.7318 against RRF's 0.7187
    # (k = 60, 100 candidates); every configuration tried is in the README.
    fusion: Fusion = Field(
        default="convex",
        description="How hybrid search merges its dense and lexical rankings: convex (a weighted sum of min-max "
        "normalised scores) or rrf (reciprocal rank fusion, with rrf_k).",
    )
    rrf_k: float = Field(default=60.0, gt=0, description="The k of reciprocal rank fusion: larger flattens ranks.")
    dense_depth: int = Field(default=200, ge=1, description="Candidates taken from the dense arm before fusion.")
    lexical_depth: int = Field(default=200, ge=1, description="Candidates taken from the lexical arm before fusion.")
    dense_weight: float = Field(default=0.5, ge=0, description="Weight of the dense arm in the fusion.")
    lexical_weight: float = Field(default=0.5, ge=0, description="Weight of the lexical arm in the fusion.")
    bm25_weights: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="BM25 weights of a chunk's text, its headings and its file's title."
    )
    per_document: int = Field(default=3, ge=1, description="At most this many passages of one document in the results.")
    drop_stop_words: bool = Field(
        default=True, description="Leave words too common to help (the, of, ...) out of the lexical query."
    )
    # "3M's capital expenditure in FY2018" with 3M_2018_10K.pdf in the library searches that file first.
    named_document_terms: int = Field(
        default=2,
        ge=0,
        description="A question naming files searches them first: those whose names hold the most of its "
        "words, at least this many (0: off).",
    )

@dataclass(frozen=True, config=_SECTION_CONFIG)
class SupportSettings:
    """How an answer sentence is checked against its sources (rag/answer/support.py, rag/answer/grounding.py)."""

    # Tuned on SciFact train only (`python -m ingest.grounding_eval tune`): for each of the 370 (claim, SUPPORT
    # evidence abstract) pairs, the best sentence's score (what a caller compares), against the claim's best score
    # in the corpus abstract closest to it by TF-IDF that it neither cites nor has evidence in: an on-topic passage
    # that does not support it, the hard case. 0.32 maximises kept-minus-passed (Youden's J): it keeps 75% of the
    # supported pairs and lets 25% of the on-topic others pass. Lower thresholds flag fewer true claims but miss
    # more: 0.29 keeps 80% / passes 33%, 0.23 keeps 90% / passes 49%, 0.18 keeps 95% / passes 64%. Off-topic
    # passages (a random abstract) score far lower: median 0.06, none of 93 passed.
    threshold: float = Field(
        default=0.32,
        gt=0,
        lt=1,
        description="A cited sentence is marked supported when the best sentence of its cited sources scores at "
        "least this (0 to 1); lower flags fewer true claims but lets more unsupported ones pass.",
    )
    # A heading states nothing, and SciFact never marks a title as evidence. Refitted on SciFact train
    # (`python bench/grounding_tune.py --only heading-penalty`): in the passages the product shows, no sentence is
    # a heading (a .txt title line goes into the chunks' heading path, outside their text), so quote accuracy@1
    # there is 0.815 for every penalty from 0 to 8; the value rests on headings inside a passage (a PDF page's, a
    # later section line of a .txt). With the title inside whole abstracts, @1 is 0.570 without the penalty (the
    # title the top pick for 19% of pairs), 0.660 at 1, 0.673 from 3 up. 4 puts a heading below nearly any body
    # sentence yet keeps it as a last resort.
    heading_penalty: float = Field(
        default=4.0,
        ge=0,
        description="Subtracted from the support model's logit for a line that looks like a heading or title: "
        "it names a topic and states nothing.",
    )
    heading_max_words: int = Field(
        default=12,
        ge=1,
        description="A one-line, unpunctuated paragraph of at most this many words, followed by more text, "
        "counts as a heading.",
    )

@dataclass(frozen=True, config=_SECTION_CONFIG)
class ChunkingSettings:
    """How documents are cut into passages (ingest/chunk.py). A change applies to files as they are next indexed."""

    tokens: int = Field(default=200, ge=32, le=256, description="Chunk size in embedding-model tokens.")
    overlap_tokens: int = Field(default=32, ge=0, le=128, description="Tokens repeated between consecutive chunks.")
    # min_fill and anchor_one_in were chosen by simulating edits on 600-paragraph documents: these values
    # changed at most 3 chunks per edit (mean 1.5), where greedy packing changed up to all later ones.
    min_fill: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Share of tokens a chunk holds before a content-defined boundary may end it: higher gives "
        "fuller chunks, lower keeps an edit's re-embedding more local.",
    )
    anchor_one_in: int = Field(
        default=3,
        ge=1,
        description="About one piece (paragraph or sentence) in this many may start a chunk, chosen by a hash of "
        "its text, so boundaries fall in the same places after an edit.",
    )

@dataclass(frozen=True, config=_SECTION_CONFIG)
class ContextSettings:
    """What quick mode gives the model to read (rag/answer/packing.py), and the first read of research mode."""

    # Chosen on FinanceBench (in-sample: it has no split) with `archivist eval financebench --context`, on the 10
    # filings indexed here (31 questions), at num_ctx 16,384: share/candidates 0.5/60 gave evidence_in_context
    # 0.774 (renamed library 0.903) in about 8,300 prompt tokens, 0.55/80 0.806 (0.935) in 9,100, 0.6/100 0.839
    # (0.935) in 10,000, 0.7/120 0.903 (0.935) in 11,600; the old top 6 0.419 (0.581). 0.6 meets 0.80 with a
    # margin while a laptop still reads the prompt in seconds, not minutes, on a GPU.
    share: float = Field(
        default=0.6,
        gt=0,
        le=0.9,
        description="Share of the context window (num_ctx) the sources may fill; the rest holds the rules, the "
        "conversation and the reply.",
    )
    candidates: int = Field(
        default=100, ge=1, le=500, description="Passages retrieved to choose from when packing the prompt."
    )
    merge_neighbours: bool = Field(
        default=True,
        description="Join neighbouring passages of one page or section into one source, so the model reads "
        "whole tables and paragraphs.",
    )


@dataclass(frozen=True, config=_SECTION_CONFIG)
class ResearchSettings:
    """Research mode: the model searches, opens, finds and calculates with tools (rag/answer/research.py)."""

    mode: Literal["quick", "research"] = Field(
        default="research",
        description="research: the model may search, open, find and calculate before it answers (when the model "
        "takes tools); quick: one answer from the packed sources.",
    )
    max_steps: int = Field(default=8, ge=0, le=64, description="Most tool calls in one answer.")
    # Tool results need room in the same window: at 16k tokens, a quarter for the first sources leaves room
    # for about three searches or page views of ~2,500 tokens each after the rules and the reply's share.
    context_share: float = Field(
        default=0.25,
        gt=0,
        le=0.9,
        description="Share of the context window the first sources fill in research mode (the rest is for what "
        "the tools bring and the reply).",
    )
    max_seconds: float = Field(
        default=600.0, gt=0, description="Longest time the research may take before the model must answer."
    )
    result_passages: int = Field(default=8, ge=1, le=50, description="Passages one search returns to the model.")
    page_lines: int = Field(default=60, ge=5, le=500, description="Lines one opened page view shows the model.")
    sandbox_cpu_seconds: float = Field(
        default=5.0, gt=0, le=60, description="CPU time one calculation may use in the sandbox."
    )
    sandbox_memory_mb: int = Field(default=256, ge=32, le=4096, description="Memory one calculation may use.")
    sandbox_output_chars: int = Field(
        default=4000, ge=100, le=100_000, description="Characters of a calculation's output sent back to the model."
    )


SECTIONS: dict[str, type[Any]] = {
    "retrieval": RetrievalSettings,
    "support": SupportSettings,
    "chunking": ChunkingSettings,
    "context": ContextSettings,
    "research": ResearchSettings,
}
# The names the chunking settings had when they were top-level; still read from the environment (the README
# documented them) and as keyword arguments.
LEGACY_NAMES: dict[str, tuple[str, str]] = {
    "chunk_tokens": ("chunking", "tokens"),
    "chunk_overlap_tokens": ("chunking", "overlap_tokens"),
    "chunk_min_fill": ("chunking", "min_fill"),
}

def section_fields(section: str) -> tuple[str, ...]:
    """The field names of a sub-settings section, in order."""
    return tuple(field.name for field in dataclasses.fields(SECTIONS[section]))

def env_name(name: str) -> str:
    """The environment variable of a setting: `model` or a dotted `retrieval.rrf_k`."""
    return ENV_PREFIX + name.replace(".", ENV_NESTED_DELIMITER).upper()

class _LegacyEnvironment(PydanticBaseSettingsSource):
    """ARCHIVIST_CHUNK_TOKENS & co., read as the chunking fields they became (below the new names)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads everything at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for old, (section, name) in LEGACY_NAMES.items():
            value = os.environ.get(env_name(old))
            if value is not None and value != "":
                values.setdefault(section, {})[name] = value
        return values

class Settings(BaseSettings):
    """Everything Archivist can be told. Each field names its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="ignore", validate_default=True
    )

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
    sources: int = Field(
        6, ge=1, le=50,
        description="The nearest passages: those the relevance check reads and those shown when the model is not "
        "asked (the model itself reads as many as fit context.share of the window).",
    )
    search_k: int = Field(10, ge=1, le=1000, description="Hits `archivist search` shows by default.")
    min_relevance: float = Field(
        0.41, ge=-1.0, le=1.0,
        description="When no passage found reaches this cosine similarity to the question, `ask` replies "
        "\"not in your documents\" with the nearest passages and does not call the LLM (0 or less: always "
        "ask). Tuned on SciFact train. ARCHIVIST_MIN_RELEVANCE.",
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings,
        description="How search ranks passages. ARCHIVIST_RETRIEVAL__<FIELD>, or the settings file's "
        "\"retrieval\" section.",
    )
    support: SupportSettings = Field(
        default_factory=SupportSettings,
        description="How answer sentences are checked against their sources. ARCHIVIST_SUPPORT__<FIELD>, or the "
        "settings file's \"support\" section.",
    )
    context: ContextSettings = Field(
        default_factory=ContextSettings,
        description="What the model is given to read. ARCHIVIST_CONTEXT__<FIELD>, or the settings file's "
        "\"context\" section.",
    )
    research: ResearchSettings = Field(
        default_factory=ResearchSettings,
        description="Research mode and its limits. ARCHIVIST_RESEARCH__<FIELD>, or the settings file's "
        "\"research\" section.",
    )
    # Ingest
    chunking: ChunkingSettings = Field(
        default_factory=ChunkingSettings,
        description="How documents are cut into passages. ARCHIVIST_CHUNKING__<FIELD> (or the older "
        "ARCHIVIST_CHUNK_TOKENS, ARCHIVIST_CHUNK_OVERLAP_TOKENS, ARCHIVIST_CHUNK_MIN_FILL), or the settings "
        "file's \"chunking\" section.",
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _LegacyEnvironment(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _legacy_keywords(cls, values: Any) -> Any:
        """`Settings(chunk_tokens=...)` as `Settings(chunking={"tokens": ...})`, over any other chunking value."""
        return fold_legacy(values) if isinstance(values, dict) else values

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

def fold_legacy(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the legacy top-level chunking names moved into their section (they win there)."""
    result = dict(values)
    for old, (section, name) in LEGACY_NAMES.items():
        if old in result:
            result[section] = {**_as_dict(result.get(section)), name: result.pop(old)}
    return result

def _as_dict(value: object) -> dict[str, Any]:
    """A section's values as a dict, whether given as a dict or as a sub-settings object."""
    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    return {}

def load_settings(**overrides: object) -> Settings:
    """Build the settings: command-line values (not None) > environment > saved settings > defaults."""
    return load_settings_with_sources(**overrides)[0]

def setting_sources(**overrides: object) -> dict[str, Source]:
    """For every field, where its value comes from: "flag", "environment", "saved" or "default"."""
    return load_settings_with_sources(**overrides)[1]

def load_settings_with_sources(**overrides: object) -> tuple[Settings, dict[str, Source]]:
    """The settings (as `load_settings`) and where each value came from: every top-level field by its name,
    and every field of a sub-settings section by its dotted name (`retrieval.rrf_k`)."""
    given = fold_legacy({key: value for key, value in overrides.items() if value is not None})
    # First without the saved file: the data folder, which holds that file, comes from flag, environment or
    # default only. pydantic-settings counts a field read from the environment as set.
    base = _build(given, "Invalid settings")
    saved = read_saved(base.data_dir)
    environment = _from_environment()
    from_saved = {key: value for key, value in saved.items()
                  if key not in SECTIONS and key not in base.model_fields_set}
    flagged: dict[str, set[str]] = {}
    from_environment: dict[str, set[str]] = {}
    for section in SECTIONS:
        flag = given.get(section)
        flagged[section] = set(flag) if isinstance(flag, Mapping) else set(section_fields(section)) if flag else set()
        from_environment[section] = set(_as_dict(environment.get(section)))
        decided = flagged[section] | from_environment[section]
        # Field by field: a section's fields may come from the flags, the environment and the file at once.
        kept = {key: value for key, value in _as_dict(saved.get(section)).items() if key not in decided}
        if kept:
            from_saved[section] = kept
    settings = base
    if from_saved:
        # Passed as keyword arguments, which pydantic-settings ranks above the environment: hence only the
        # fields neither a flag nor the environment set. A section given here is merged, field by field, with
        # what the environment gives for it.
        values: dict[str, object] = {**from_saved, **given}
        for section in SECTIONS:
            if section in from_saved and isinstance(given.get(section), Mapping):
                values[section] = {**_as_dict(from_saved[section]), **_as_dict(given[section])}
        settings = _build(
            values,
            f"Invalid saved setting in {saved_settings_path(base.data_dir)} (change it on the Settings page, "
            "or edit or delete the file)",
        )
    sources: dict[str, Source] = {}
    for name in Settings.model_fields:
        if name in SECTIONS:
            for field in section_fields(name):
                sources[f"{name}.{field}"] = (
                    "flag" if field in flagged[name]
                    else "environment" if field in from_environment[name]
                    else "saved" if field in _as_dict(from_saved.get(name))
                    else "default"
                )
        elif name in given:
            sources[name] = "flag"
        elif name in from_saved:
            sources[name] = "saved"
        elif name in base.model_fields_set:
            sources[name] = "environment"
        else:
            sources[name] = "default"
    return settings, sources

def _from_environment() -> dict[str, Any]:
    """What the environment sets, as pydantic-settings reads it (sections as dicts), legacy names included."""
    values = _LegacyEnvironment(Settings)()
    for key, value in EnvSettingsSource(Settings)().items():
        if key in SECTIONS:
            values[key] = {**_as_dict(values.get(key)), **_as_dict(value)}
        else:
            values[key] = value
    return values

def save_settings(data_dir: Path, changes: Mapping[str, object]) -> dict[str, object]:
    """Merge `changes` into the saved settings of `data_dir` and write them; a None value forgets a field or a
    whole section (back to the defaults). A section given replaces the saved one. Values are validated first
    (ConfigError naming the field) and stored as validated (e.g. OLLAMA_HOST normalised). Returns everything
    now saved. Flags and environment variables still win."""
    savable = (*SAVABLE_FIELDS, *SAVABLE_SECTIONS)
    unknown = sorted(set(changes) - set(savable))
    if unknown:
        raise ConfigError(f"These settings cannot be saved: {', '.join(unknown)}; only {', '.join(savable)} can.")
    merged = dict(read_saved(data_dir))
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    validated = _build({**merged, "data_dir": data_dir}, "Invalid settings").model_dump(mode="json")
    values: dict[str, object] = {}
    for name in savable:
        if name in SECTIONS and name in merged:
            # Only the fields the file names: the others keep following the defaults.
            values[name] = {key: validated[name][key] for key in _as_dict(merged[name])}
        elif name in merged:
            values[name] = validated[name]
    write_saved(data_dir, values)
    return values

def _build(values: Mapping[str, object], problem: str) -> Settings:
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = "; ".join(_describe(item["loc"], item["type"], item["msg"]) for item in error.errors())
        raise ConfigError(f"{problem}: {problems}") from None
    except SettingsError as error:  # an environment variable that should hold JSON (a list, a section) does not
        raise ConfigError(f"{problem}: {error}") from None

def _describe(location: tuple[int | str, ...], kind: str, message: str) -> str:
    name = ".".join(str(part) for part in location) or "settings"
    if kind in ("unexpected_keyword_argument", "extra_forbidden") and len(location) == 2 and location[0] in SECTIONS:
        section = str(location[0])
        return f"{name}: no such setting; the {section} settings are {', '.join(section_fields(section))}"
    return f"{name}: {message}"
