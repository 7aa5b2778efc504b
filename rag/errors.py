"""Every error Archivist raises on purpose, each with a message written for the person reading it.

    ArchivistError
    ├── ConfigError                 a setting is invalid
    ├── IndexLockedError            another process owns the index (names it and its pid)
    ├── DataFolderError             the data folder cannot be created or written (permissions, a file there)
    ├── QuestionTooLong             the question alone does not fit the context window
    ├── OutsideLibrary              a path the page was asked to open lies outside the watched folders
    ├── FolderError                 a folder cannot be added to or removed from the watched ones
    ├── VectorServerUnavailable     the Chroma server named by ARCHIVIST_CHROMA_URL does not answer
    ├── EgressRefused               a connection off this machine nobody configured (also a ConnectionRefusedError)
    ├── PageImageError              a PDF page could not be drawn (missing page, encrypted, damaged)
    ├── DocumentError               one file could not be indexed; the run goes on
    │   ├── SkippedDocument         deliberately not indexed (unsupported type, too large)
    │   │   ├── UnsupportedFileType
    │   │   └── FileTooLarge
    │   └── FailedDocument          tried and could not read it
    │       ├── EmptyFile
    │       ├── NotText             binary content behind a text extension
    │       ├── EncryptedFile
    │       ├── DamagedFile
    │       ├── NoTextLayer         image-only PDF
    │       ├── UnreadableFile      permission denied, vanished while being read, I/O error
    │       ├── UnexpectedFailure   an error nobody foresaw while preparing this one file
    │       └── ResourceLimit       reading it would take more than the limits allow
    │           ├── TooComplex      expands beyond a size, element or nesting cap (checked before reading)
    │           ├── ParseTimeout    took longer than ARCHIVIST_PARSE_TIMEOUT_S
    │           ├── ParseOutOfMemory  needed more than ARCHIVIST_PARSE_MEMORY_MB
    │           └── ParserCrashed   the reading process ended unexpectedly
    ├── IngestAborted               an indexing run could not go on (not one file's fault)
    ├── WatcherStillRunning         the watcher did not stop in time: the index stays open while it writes
    └── LLMError                    talking to the language model failed
        ├── LLMUnavailable          server not reachable
        ├── ModelMissing            server up, model not pulled
        ├── LLMTimeout
        └── LLMResponseError        the server answered with an error
            ├── ToolsUnsupported    the server or model does not take tools (research mode falls back to one shot)
            └── MalformedToolCall   the server could not parse the model's tool call (retried once)

The faces (CLI, UI) catch ArchivistError in exactly one place each and show `str(error)`. Every class is
defined here and drawn above (tests/unit/test_errors.py compares the drawing with the classes).
"""

from __future__ import annotations


class ArchivistError(Exception):
    """Base of every error Archivist raises on purpose."""


class ConfigError(ArchivistError):
    """A setting has a value Archivist cannot use."""


class IndexLockedError(ArchivistError):
    """Another process is writing to the index in this data folder."""


class DataFolderError(ArchivistError):
    """The data folder (where the index lives) cannot be created, read or written."""


class FolderError(ArchivistError):
    """A folder cannot be added to or removed from the library; the message says why."""


class VectorServerUnavailable(ArchivistError):
    """The Chroma server named by ARCHIVIST_CHROMA_URL does not answer."""


class EgressRefused(ArchivistError, ConnectionRefusedError):
    """A connection off this machine that nobody configured; refused before any packet left (rag/egress.py).
    Also a ConnectionRefusedError, so libraries treat it as the network being down."""


class QuestionTooLong(ArchivistError):
    """The question (with the rules) leaves no room for sources in the context window."""


class OutsideLibrary(ArchivistError):
    """A file the page was asked to show or offer lies outside every watched folder (or does not exist)."""


class PageImageError(ArchivistError):
    """One page of a PDF could not be drawn: no such page, an encrypted or a damaged file."""


class DocumentError(ArchivistError):
    """One file could not be indexed. `reason` is short and fit for a status column."""

    status = "failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SkippedDocument(DocumentError):
    """A file Archivist chose not to index."""

    status = "skipped"


class UnsupportedFileType(SkippedDocument):
    pass


class FileTooLarge(SkippedDocument):
    pass


class FailedDocument(DocumentError):
    """A file Archivist tried to read and could not."""


class EmptyFile(FailedDocument):
    pass


class NotText(FailedDocument):
    pass


class EncryptedFile(FailedDocument):
    pass


class DamagedFile(FailedDocument):
    pass


class NoTextLayer(FailedDocument):
    pass


class UnreadableFile(FailedDocument):
    pass


class UnexpectedFailure(FailedDocument):
    """A bug or a library's surprise while preparing one file: that file fails, the run goes on."""


class IngestAborted(ArchivistError):
    """An indexing run stopped before reaching every file, for a reason that is not one file's fault."""


class WatcherStillRunning(ArchivistError):
    """The watcher's worker did not reach a safe point in time; the index must stay open while it runs."""


class ResourceLimit(FailedDocument):
    """Reading the file would take more memory, time or space than Archivist allows one file."""


class TooComplex(ResourceLimit):
    """The content expands beyond a cap checked before or while reading (a decompression bomb, say)."""


class ParseTimeout(ResourceLimit):
    """Reading the file took longer than ARCHIVIST_PARSE_TIMEOUT_S; the reading process was stopped."""


class ParseOutOfMemory(ResourceLimit):
    """Reading the file needed more memory than ARCHIVIST_PARSE_MEMORY_MB."""


class ParserCrashed(ResourceLimit):
    """The separate process reading the file ended without an answer (killed from outside, or a crash)."""


class LLMError(ArchivistError):
    """Talking to the language model failed; the message says what to do."""


class LLMUnavailable(LLMError):
    pass


class ModelMissing(LLMError):
    pass


class LLMTimeout(LLMError):
    pass


class LLMResponseError(LLMError):
    pass


class ToolsUnsupported(LLMResponseError):
    """The server or model refused a request that offered tools: research mode answers in one shot instead."""


class MalformedToolCall(LLMResponseError):
    """The server could not parse the tool call the model wrote (Ollama: HTTP 500 `error parsing tool call`)."""
