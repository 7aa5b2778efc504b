"""The SQLite catalog: the one source of truth for which documents and chunks are in the index.

Chroma only holds vectors keyed by chunk id; retrieval reads every hit back through this catalog, so a
vector the catalog does not know (an orphan left by a crash) is never shown. WAL mode lets readers in
other processes query while the one writer commits.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from rag.errors import ConfigError
from rag.index.paths import display_text, load_path, store_path
from rag.records import Filters, Vectors

logger = logging.getLogger(__name__)

# Each migration brings the catalog from the version before it to its own; `PRAGMA user_version` records
# where a file stands, and opening a catalog applies whatever it lacks, in one transaction.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE IF NOT EXISTS documents (
    id           TEXT PRIMARY KEY,
    path         TEXT NOT NULL UNIQUE,
    kind         TEXT,
    content_hash TEXT,
    size         INTEGER NOT NULL DEFAULT 0,
    mtime_ns     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL,          -- indexed | failed | skipped
    error        TEXT,
    page_count   INTEGER NOT NULL DEFAULT 0,
    warnings     TEXT NOT NULL DEFAULT '[]',
    updated_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_hash ON documents(content_hash);
CREATE TABLE IF NOT EXISTS chunks (
    id          TEXT PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL,
    page_start  INTEGER NOT NULL,
    page_end    INTEGER NOT NULL,
    headings    TEXT NOT NULL DEFAULT '[]',
    text        TEXT NOT NULL,
    text_hash   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id, ordinal);
-- Vectors by (model, hash of the embedded text): unchanged, moved and duplicate text is never re-embedded.
CREATE TABLE IF NOT EXISTS embedding_cache (
    model     TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;
""",
    2: """
-- Paragraphs extracted from PDF pages, by a digest of what the page's text depends on: an edited PDF
-- re-extracts only its changed pages.
CREATE TABLE IF NOT EXISTS page_text (
    key        TEXT PRIMARY KEY,
    paragraphs TEXT NOT NULL,
    used_at    REAL NOT NULL
) WITHOUT ROWID;
""",
    # 3: lexical search. Chunks get an integer key (FTS5 rows are addressed by integer), documents a title
    # (the file name's words: "3M_2018_10K.pdf" is "3M 2018 10K"), and an FTS5 index over chunk text,
    # headings and title is kept in step by triggers, inside the same transactions as the chunks.
    3: """
CREATE TABLE chunks_v3 (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal     INTEGER NOT NULL,
    page_start  INTEGER NOT NULL,
    page_end    INTEGER NOT NULL,
    headings    TEXT NOT NULL DEFAULT '[]',
    text        TEXT NOT NULL,
    text_hash   TEXT NOT NULL
);
INSERT INTO chunks_v3 (id, document_id, ordinal, page_start, page_end, headings, text, text_hash)
    SELECT id, document_id, ordinal, page_start, page_end, headings, text, text_hash FROM chunks;
DROP TABLE chunks;
ALTER TABLE chunks_v3 RENAME TO chunks;
CREATE INDEX chunks_by_document ON chunks(document_id, ordinal);
ALTER TABLE documents ADD COLUMN title TEXT NOT NULL DEFAULT '';
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, headings, title, tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text, headings, title)
    VALUES (new.seq, new.text, new.headings, (SELECT title FROM documents WHERE id = new.document_id));
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.seq;
END;
CREATE TRIGGER documents_fts_title AFTER UPDATE OF title ON documents BEGIN
    UPDATE chunks_fts SET title = new.title WHERE rowid IN (SELECT seq FROM chunks WHERE document_id = new.id);
END;
""",
    # 4: re-indexing a document rewrote every FTS row of its chunks, because an UPDATE that sets the title
    # to the same value still fires an UPDATE OF trigger; now only a real rename does.
    4: """
DROP TRIGGER documents_fts_title;
CREATE TRIGGER documents_fts_title AFTER UPDATE OF title ON documents WHEN old.title IS NOT new.title BEGIN
    UPDATE chunks_fts SET title = new.title WHERE rowid IN (SELECT seq FROM chunks WHERE document_id = new.id);
END;
""",
    # 5: the catalog was 12x the text it held (issue 12, item 7): the full-text index kept its own copy of
    # every chunk's text, and the embedding cache a second copy of every vector the vector store holds, in a
    # WITHOUT ROWID table whose 1.5 KB rows each spilled onto an overflow page (~4.7 KB per vector). Now the
    # full-text index reads its text from the chunks (external content, through a view that adds the title),
    # and the cache keeps only vectors of text no chunk holds any more (the store has the rest), in a rowid
    # table, stamped for oldest-first eviction. Deleting a document deletes its chunks first (a BEFORE
    # trigger), so the full-text 'delete' still sees the title the rows were indexed with.
    5: """
DROP TRIGGER chunks_fts_insert;
DROP TRIGGER chunks_fts_delete;
DROP TRIGGER documents_fts_title;
DROP TABLE chunks_fts;
CREATE VIEW chunks_fts_content AS
    SELECT c.seq AS seq, c.text AS text, c.headings AS headings, d.title AS title
    FROM chunks c JOIN documents d ON d.id = c.document_id;
CREATE VIRTUAL TABLE chunks_fts USING fts5(text, headings, title, content='chunks_fts_content', content_rowid='seq',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text, headings, title)
    VALUES (new.seq, new.text, new.headings, (SELECT title FROM documents WHERE id = new.document_id));
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text, headings, title)
    VALUES ('delete', old.seq, old.text, old.headings, (SELECT title FROM documents WHERE id = old.document_id));
END;
CREATE TRIGGER documents_chunks_delete BEFORE DELETE ON documents BEGIN
    DELETE FROM chunks WHERE document_id = old.id;
END;
CREATE TRIGGER documents_fts_title AFTER UPDATE OF title ON documents WHEN old.title IS NOT new.title BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text, headings, title)
        SELECT 'delete', seq, text, headings, old.title FROM chunks WHERE document_id = new.id;
    INSERT INTO chunks_fts (rowid, text, headings, title)
        SELECT seq, text, headings, new.title FROM chunks WHERE document_id = new.id;
END;
INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild');
CREATE INDEX chunks_by_text ON chunks(text_hash);
CREATE TABLE embedding_cache_v5 (
    model     TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector    BLOB NOT NULL,
    used_at   REAL NOT NULL,
    PRIMARY KEY (model, text_hash)
);
INSERT INTO embedding_cache_v5 (model, text_hash, vector, used_at)
    SELECT model, text_hash, vector, 0 FROM embedding_cache WHERE text_hash NOT IN (SELECT text_hash FROM chunks);
DROP TABLE embedding_cache;
ALTER TABLE embedding_cache_v5 RENAME TO embedding_cache;
CREATE INDEX embedding_cache_by_age ON embedding_cache(used_at);
CREATE INDEX page_text_by_age ON page_text(used_at);
""",
}
SCHEMA_VERSION = max(MIGRATIONS)

# Caches are bounded: beyond these many rows the least recently used go first. A vector is ~1.6 KB on disk
# and a page's paragraphs a few KB, so each cache stays under ~50 MB.
EMBEDDING_CACHE_MAX = 20_000
PAGE_TEXT_CACHE_MAX = 10_000


def title_for(path: str) -> str:
    """The words of a file's name, for lexical search: "reports/3M_2018_10K.pdf" gives "3M 2018 10K"."""
    # An undecodable byte (a lone surrogate) is not a word character, so it never reaches the FTS index.
    return " ".join(re.split(r"[\W_]+", PurePath(path).stem)).strip()


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping a trigger's body (which holds semicolons) whole."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [statement for statement in statements if statement.rstrip(";").strip()]


@dataclass(frozen=True)
class DocumentRow:
    id: str
    path: str
    kind: str | None
    content_hash: str | None
    size: int
    mtime_ns: int
    status: str
    error: str | None
    page_count: int
    warnings: tuple[str, ...]
    updated_at: float


@dataclass(frozen=True)
class ChunkRow:
    id: str
    document_id: str
    ordinal: int
    page_start: int
    page_end: int
    headings: tuple[str, ...]
    text: str
    text_hash: str
    path: str = ""  # filled when read joined with its document


def _document(row: sqlite3.Row) -> DocumentRow:
    return DocumentRow(
        id=row["id"],
        path=load_path(row["path"]),
        kind=row["kind"],
        content_hash=row["content_hash"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        status=row["status"],
        error=row["error"],
        page_count=row["page_count"],
        warnings=tuple(json.loads(row["warnings"])),
        updated_at=row["updated_at"],
    )


def _chunk(row: sqlite3.Row) -> ChunkRow:
    return ChunkRow(
        id=row["id"],
        document_id=row["document_id"],
        ordinal=row["ordinal"],
        page_start=row["page_start"],
        page_end=row["page_end"],
        headings=tuple(json.loads(row["headings"])),
        text=row["text"],
        text_hash=row["text_hash"],
        path=load_path(row["path"]) if "path" in row.keys() else "",  # noqa: SIM118 (sqlite3.Row has no __contains__)
    )


def filter_condition(filters: Filters | None) -> tuple[str, list[object]]:
    """The SQL condition on `d` (documents) that applies `filters`, with its parameters ('' when none)."""
    if filters is None:
        return "", []
    clauses: list[str] = []
    parameters: list[object] = []
    if filters.folder:
        prefix = filters.folder.rstrip("/") + "/"
        clauses.append("substr(d.path, 1, ?) = ?")
        parameters += [len(prefix), prefix]
    if filters.kinds:
        clauses.append(f"d.kind IN ({','.join('?' * len(filters.kinds))})")
        parameters += list(filters.kinds)
    if filters.name_glob:
        # GLOB on the name only: the last path component, case-insensitively like most desktops.
        clauses.append("lower(replace(d.path, rtrim(d.path, replace(d.path, '/', '')), '')) GLOB ?")
        parameters.append(filters.name_glob.lower())
    if filters.document_ids:
        clauses.append(f"d.id IN ({','.join('?' * len(filters.document_ids))})")
        parameters += list(filters.document_ids)
    return " AND ".join(clauses), parameters


class Catalog:
    """Documents, chunks and the embedding cache in one SQLite file. Thread-safe."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._title_index: tuple[tuple[int, int], dict[str, list[str]]] | None = None
        self._page_touches: dict[str, float] = {}
        self._db = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        # Read the version without a transaction first: a reader (`status`, `search`, a page session) must
        # open the catalog while a writer holds a long write transaction, so the write lock is taken only
        # when a migration is due (and the version read again under it: another process may have migrated).
        if self._version() == SCHEMA_VERSION:
            return
        with self.transaction():
            version = self._version()
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _statements(MIGRATIONS[target]):
                    self._db.execute(statement)
                if target == 3:
                    self._fill_titles()
                self._db.execute(f"PRAGMA user_version = {target}")
        if 0 < version < 5:
            self._compact()

    def _version(self) -> int:
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"The index in {self.path.parent} was written by a newer Archivist (catalog version "
                f"{version}, this one knows up to {SCHEMA_VERSION}). Upgrade Archivist, or use another --data-dir."
            )
        return version

    def _compact(self) -> None:
        """Give the space version 5 freed back to the file system (once, after the upgrade); if another
        process has the catalog open, SQLite reuses the free pages instead."""
        try:
            with self._lock:
                self._db.execute("VACUUM")
        except sqlite3.OperationalError as error:
            logger.info("catalog not compacted after the upgrade (%s); its free pages will be reused", error)

    def _fill_titles(self) -> None:
        """Titles for documents catalogued before version 3 (the trigger carries them into the FTS index)."""
        rows = self._db.execute("SELECT id, path FROM documents").fetchall()
        self._db.executemany("UPDATE documents SET title = ? WHERE id = ?", [(title_for(p), i) for i, p in rows])
        self._db.execute(
            "INSERT INTO chunks_fts (rowid, text, headings, title) SELECT c.seq, c.text, c.headings, d.title "
            "FROM chunks c JOIN documents d ON d.id = c.document_id"
        )

    def data_version(self) -> int:
        """Changes whenever another connection (another process) commits to the catalog."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ----- documents -----
    def document_by_path(self, path: str) -> DocumentRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE path = ?", (store_path(path),)).fetchone()
        return _document(row) if row else None

    def documents_with_hash(self, content_hash: str) -> list[DocumentRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE content_hash = ? AND status = 'indexed'", (content_hash,)
            ).fetchall()
        return [_document(row) for row in rows]

    def documents(self, under: str | None = None) -> list[DocumentRow]:
        """All documents, or those whose path lies under the folder `under`."""
        with self._lock:
            if under is None:
                rows = self._db.execute("SELECT * FROM documents ORDER BY path").fetchall()
            else:
                # store_path maps character by character, so a folder's stored form prefixes its files'.
                prefix = store_path(under.rstrip("/") + "/")
                rows = self._db.execute(
                    "SELECT * FROM documents WHERE path = ? OR substr(path, 1, ?) = ? ORDER BY path",
                    (store_path(under), len(prefix), prefix),
                ).fetchall()
        return [_document(row) for row in rows]

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM documents GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def chunk_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def chunk_counts(self) -> dict[str, int]:
        """Chunks per document id, in one grouped query (documents without chunks are absent)."""
        with self._lock:
            rows = self._db.execute("SELECT document_id, count(*) FROM chunks GROUP BY document_id").fetchall()
        return {str(document_id): int(count) for document_id, count in rows}

    # ----- chunks -----
    def chunks_of(self, document_id: str) -> list[ChunkRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM chunks WHERE document_id = ? ORDER BY ordinal", (document_id,)
            ).fetchall()
        return [_chunk(row) for row in rows]

    def chunks_by_id(self, ids: Sequence[str]) -> dict[str, ChunkRow]:
        """The chunks (with their document's path) for the ids the catalog knows; unknown ids are absent."""
        found: dict[str, ChunkRow] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT c.*, d.path AS path FROM chunks c JOIN documents d ON d.id = c.document_id "
                    f"WHERE c.id IN ({marks})",
                    part,
                ).fetchall()
                found.update((row["id"], _chunk(row)) for row in rows)
        return found

    def chunks_at(self, places: Sequence[tuple[str, int]]) -> dict[tuple[str, int], ChunkRow]:
        """The chunks (with their document's path) at these (document id, ordinal) places, e.g. a hit's
        neighbours; places with no chunk are absent."""
        by_document: dict[str, set[int]] = {}
        for document_id, ordinal in places:
            by_document.setdefault(document_id, set()).add(ordinal)
        found: dict[tuple[str, int], ChunkRow] = {}
        with self._lock:
            for document_id, ordinals in by_document.items():
                wanted = sorted(ordinals)
                for start in range(0, len(wanted), 500):
                    part = wanted[start : start + 500]
                    marks = ",".join("?" * len(part))
                    rows = self._db.execute(
                        f"SELECT c.*, d.path AS path FROM chunks c JOIN documents d ON d.id = c.document_id "
                        f"WHERE c.document_id = ? AND c.ordinal IN ({marks})",
                        [document_id, *part],
                    ).fetchall()
                    found.update(((row["document_id"], row["ordinal"]), _chunk(row)) for row in rows)
        return found

    def all_chunk_hashes(self) -> dict[str, str]:
        """Every chunk's id -> its text hash."""
        with self._lock:
            return {row[0]: row[1] for row in self._db.execute("SELECT id, text_hash FROM chunks")}

    def all_chunk_ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM chunks")}

    # ----- embedding cache -----
    def cached_vectors(self, model: str, text_hashes: Iterable[str]) -> dict[str, Vectors]:
        wanted = list(dict.fromkeys(text_hashes))
        found: dict[str, Vectors] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT text_hash, vector FROM embedding_cache WHERE model = ? AND text_hash IN ({marks})",
                    [model, *part],
                ).fetchall()
                found.update((row[0], np.frombuffer(row[1], dtype=np.float32)) for row in rows)
        return found

    def cache_vectors(self, model: str, vectors: dict[str, Vectors], limit: int = EMBEDDING_CACHE_MAX) -> None:
        """Keep vectors of text no chunk holds now (a deleted file, an undone edit may bring it back); the least
        recently stored go first beyond `limit` rows, and so does anything a chunk holds again (the vector
        store has that one)."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embedding_cache (model, text_hash, vector, used_at) VALUES (?, ?, ?, ?)",
                [(model, key, np.asarray(vector, dtype=np.float32).tobytes(), now) for key, vector in vectors.items()],
            )
            self._trim_embedding_cache(db, limit)

    def uncache_vectors(self, model: str, text_hashes: Iterable[str]) -> None:
        wanted = [(model, digest) for digest in dict.fromkeys(text_hashes)]
        with self.transaction() as db:
            db.executemany("DELETE FROM embedding_cache WHERE model = ? AND text_hash = ?", wanted)

    def trim_caches(self, embedding_limit: int = EMBEDDING_CACHE_MAX, page_limit: int = PAGE_TEXT_CACHE_MAX) -> None:
        """Bound both caches now (they are also trimmed as they are written)."""
        with self.transaction() as db:
            self._trim_embedding_cache(db, embedding_limit)
            self._flush_page_touches(db)
            self._trim_page_text(db, page_limit)

    @staticmethod
    def _trim_embedding_cache(db: sqlite3.Connection, limit: int) -> None:
        db.execute("DELETE FROM embedding_cache WHERE text_hash IN (SELECT text_hash FROM chunks)")
        count = int(db.execute("SELECT count(*) FROM embedding_cache").fetchone()[0])
        if count > limit:
            db.execute(
                "DELETE FROM embedding_cache WHERE rowid IN (SELECT rowid FROM embedding_cache "
                "ORDER BY used_at, rowid LIMIT ?)", (count - limit,),
            )

    def chunk_ids_with_text(self, text_hashes: Iterable[str]) -> dict[str, str]:
        """For each text hash some chunk holds: one such chunk's id (its vector is in the vector store)."""
        wanted = list(dict.fromkeys(text_hashes))
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT text_hash, min(id) FROM chunks WHERE text_hash IN ({marks}) GROUP BY text_hash", part
                ).fetchall()
                found.update((row[0], row[1]) for row in rows)
        return found

    def chunk_keys(self, document_id: str) -> dict[str, tuple[int, int, int, str]]:
        """A document's chunks without their text: id -> (ordinal, page_start, page_end, text_hash)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, ordinal, page_start, page_end, text_hash FROM chunks WHERE document_id = ?", (document_id,)
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def held_text_hashes(self, text_hashes: Iterable[str]) -> set[str]:
        """Which of these text hashes some chunk holds."""
        return set(self.chunk_ids_with_text(text_hashes))

    # ----- lexical search -----
    def lexical_search(
        self,
        terms: Sequence[str],
        limit: int,
        weights: tuple[float, float, float] = (1.0, 1.0, 1.0),
        filters: Filters | None = None,
    ) -> list[tuple[str, float]]:
        """Chunks matching any of `terms` by BM25 over (text, headings, title), best first, as (id, score),
        of the documents that pass `filters`."""
        if not terms or limit <= 0:
            return []
        where, parameters = filter_condition(filters)
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        if where:
            # Filtered: the filter has to apply before the limit, so every match is joined.
            sql = (
                "SELECT c.id, bm25(chunks_fts, ?, ?, ?) AS rank FROM chunks_fts "
                "JOIN chunks c ON c.seq = chunks_fts.rowid JOIN documents d ON d.id = c.document_id "
                f"WHERE chunks_fts MATCH ? AND {where} ORDER BY rank LIMIT ?"
            )
        else:
            # Unfiltered: rank inside the full-text index alone and join only the best `limit` rows; a query
            # of common words matches most chunks, and joining them all first costs more than ranking them.
            sql = (
                "SELECT c.id, best.rank FROM (SELECT rowid, bm25(chunks_fts, ?, ?, ?) AS rank FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) AS best JOIN chunks c ON c.seq = best.rowid "
                "ORDER BY best.rank"
            )
        with self._lock:
            rows = self._db.execute(sql, [*weights, match, *parameters, limit]).fetchall()
        return [(row[0], -float(row[1])) for row in rows]

    def documents_named(self, terms: Sequence[str]) -> dict[str, int]:
        """Indexed documents whose file name holds any of `terms` (whole words, any case): id -> how many
        of the terms it holds. Looks up an index of file-name words kept in memory until the catalog
        changes (by this connection or another process)."""
        if not terms:
            return {}
        counts: dict[str, int] = {}
        postings = self._title_words()
        for term in dict.fromkeys(term.lower() for term in terms):
            for document_id in postings.get(term, ()):
                counts[document_id] = counts.get(document_id, 0) + 1
        return counts

    def _title_words(self) -> dict[str, list[str]]:
        with self._lock:
            version = (int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._db.total_changes)
            if self._title_index is None or self._title_index[0] != version:
                postings: dict[str, list[str]] = {}
                for document_id, title in self._db.execute(
                    "SELECT id, title FROM documents WHERE status = 'indexed' AND title != ''"
                ):
                    for word in dict.fromkeys(str(title).lower().split()):
                        postings.setdefault(word, []).append(document_id)
                self._title_index = (version, postings)
            return self._title_index[1]

    def chunk_documents(self, ids: Sequence[str], filters: Filters | None = None) -> dict[str, str]:
        """Chunk id -> document id, for the ids whose documents pass `filters`."""
        where, parameters = filter_condition(filters)
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT c.id, c.document_id FROM chunks c JOIN documents d ON d.id = c.document_id "
                    f"WHERE c.id IN ({marks}) {('AND ' + where) if where else ''}",
                    [*part, *parameters],
                ).fetchall()
                found.update((row[0], row[1]) for row in rows)
        return found

    # ----- PDF page text cache (ingest.document.PageTextCache) -----
    def get(self, key: str) -> list[str] | None:
        with self._lock:
            row = self._db.execute("SELECT paragraphs FROM page_text WHERE key = ?", (key,)).fetchone()
            if row:
                # Remembered, and written with the next put: a read must not take the write lock.
                self._page_touches[key] = time.time()
        return list(json.loads(row[0])) if row else None

    def put(self, key: str, paragraphs: list[str], limit: int = PAGE_TEXT_CACHE_MAX) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO page_text (key, paragraphs, used_at) VALUES (?, ?, ?)",
                (key, json.dumps(paragraphs, ensure_ascii=False), time.time()),
            )
            self._flush_page_touches(db)
            self._trim_page_text(db, limit)

    def _flush_page_touches(self, db: sqlite3.Connection) -> None:
        touches, self._page_touches = self._page_touches, {}
        db.executemany("UPDATE page_text SET used_at = ? WHERE key = ?", [(t, k) for k, t in touches.items()])

    @staticmethod
    def _trim_page_text(db: sqlite3.Connection, limit: int) -> None:
        count = int(db.execute("SELECT count(*) FROM page_text").fetchone()[0])
        if count > limit:
            db.execute(
                "DELETE FROM page_text WHERE key IN (SELECT key FROM page_text ORDER BY used_at LIMIT ?)",
                (count - limit,),
            )

    def clear(self, keep_caches: bool = False) -> None:
        """Delete every document with its chunks and full-text rows (by trigger) and, unless `keep_caches`,
        the embedding and PDF page caches, all in one transaction."""
        with self.transaction() as db:
            db.execute("DELETE FROM documents")  # chunks go first (a trigger), full-text rows by trigger
            if not keep_caches:
                db.execute("DELETE FROM embedding_cache")
                db.execute("DELETE FROM page_text")

    # ----- writes (call inside `transaction()`) -----
    @staticmethod
    def put_document(db: sqlite3.Connection, document: DocumentRow) -> None:
        db.execute(
            "INSERT INTO documents (id, path, kind, content_hash, size, mtime_ns, status, error, page_count,"
            " warnings, updated_at, title) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
            " path=excluded.path, kind=excluded.kind, content_hash=excluded.content_hash,"
            " size=excluded.size, mtime_ns=excluded.mtime_ns, status=excluded.status, error=excluded.error,"
            " page_count=excluded.page_count, warnings=excluded.warnings, updated_at=excluded.updated_at,"
            " title=excluded.title",
            (
                document.id,
                store_path(document.path),
                document.kind,
                document.content_hash,
                document.size,
                document.mtime_ns,
                document.status,
                None if document.error is None else display_text(document.error),
                document.page_count,
                json.dumps(list(document.warnings)),
                document.updated_at or time.time(),
                title_for(document.path),
            ),
        )

    @staticmethod
    def touch_document(db: sqlite3.Connection, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new size and mtime (e.g. `touch`): the next scan compares against these."""
        db.execute("UPDATE documents SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, store_path(path)))

    @staticmethod
    def move_document(db: sqlite3.Connection, document_id: str, path: str, size: int, mtime_ns: int) -> None:
        db.execute(
            "UPDATE documents SET path = ?, title = ?, size = ?, mtime_ns = ?, updated_at = ? WHERE id = ?",
            (store_path(path), title_for(path), size, mtime_ns, time.time(), document_id),
        )

    @staticmethod
    def add_chunks(
        db: sqlite3.Connection, document_id: str, chunks: Sequence[ChunkRow], old: dict[str, tuple[int, int, int, str]]
    ) -> None:
        """Insert `chunks` the document lacks and move (ordinal, pages) those it has (`old`, from chunk_keys);
        nothing is deleted: one part of a document written in parts."""
        db.executemany(
            "UPDATE chunks SET ordinal = ?, page_start = ?, page_end = ? WHERE id = ?",
            [(c.ordinal, c.page_start, c.page_end, c.id) for c in chunks
             if c.id in old and old[c.id][:3] != (c.ordinal, c.page_start, c.page_end)],
        )
        db.executemany(
            "INSERT OR IGNORE INTO chunks (id, document_id, ordinal, page_start, page_end, headings, text, text_hash)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (c.id, document_id, c.ordinal, c.page_start, c.page_end, json.dumps(list(c.headings)), c.text,
                 c.text_hash)
                for c in chunks if c.id not in old
            ],
        )

    @staticmethod
    def delete_chunks(db: sqlite3.Connection, ids: Iterable[str]) -> None:
        db.executemany("DELETE FROM chunks WHERE id = ?", [(chunk_id,) for chunk_id in ids])

    @staticmethod
    def replace_chunks(db: sqlite3.Connection, document_id: str, chunks: Sequence[ChunkRow]) -> None:
        """Make the document's chunks exactly `chunks`, touching only rows that changed: after a small edit
        most chunks keep their id (and text), so their full-text rows stay as they are."""
        old = {
            row[0]: tuple(row[1:])
            for row in db.execute(
                "SELECT id, ordinal, page_start, page_end FROM chunks WHERE document_id = ?", (document_id,)
            )
        }
        wanted = {c.id for c in chunks}
        gone = [(chunk_id,) for chunk_id in old if chunk_id not in wanted]
        db.executemany("DELETE FROM chunks WHERE id = ?", gone)
        db.executemany(
            "UPDATE chunks SET ordinal = ?, page_start = ?, page_end = ? WHERE id = ?",
            [(c.ordinal, c.page_start, c.page_end, c.id) for c in chunks
             if c.id in old and old[c.id] != (c.ordinal, c.page_start, c.page_end)],
        )
        db.executemany(
            "INSERT INTO chunks (id, document_id, ordinal, page_start, page_end, headings, text, text_hash)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (c.id, document_id, c.ordinal, c.page_start, c.page_end, json.dumps(list(c.headings)), c.text,
                 c.text_hash)
                for c in chunks if c.id not in old
            ],
        )

    @staticmethod
    def delete_document(db: sqlite3.Connection, document_id: str) -> None:
        db.execute("DELETE FROM documents WHERE id = ?", (document_id,))

    # ----- research tools (rag/tools/library.py) -----
    def folders_matching(self, folder: str) -> list[str]:
        """The folders of searchable documents that `folder` names, sorted: the folder itself when it is an
        absolute path holding any, else every folder whose path ends in it, compared case-insensitively
        ("reports" and "2022/Reports" both name /home/me/docs/2022/reports). The model sees file names, not
        folders, so it names a folder as the question did."""
        wanted = folder.strip().replace("\\", "/")
        if not wanted.strip("/"):
            return []
        with self._lock:
            stored = [str(row[0]) for row in self._db.execute(
                "SELECT path FROM documents WHERE status IN ('indexed', 'partial')")]
        paths = [load_path(path) for path in stored]
        if wanted.startswith("/"):
            prefix = wanted.rstrip("/") + "/"
            return [wanted.rstrip("/")] if any(path.startswith(prefix) for path in paths) else []
        needle = "/" + wanted.strip("/").lower() + "/"
        found: set[str] = set()
        for path in paths:
            lowered = path.lower()
            at = lowered.find(needle)
            while at >= 0:
                found.add(path[: at + len(needle) - 1])
                at = lowered.find(needle, at + 1)
        return sorted(found)

    def count_documents(self, filters: Filters | None = None) -> int:
        """How many documents with passages pass `filters` (all of them when None)."""
        where, parameters = filter_condition(filters)
        sql = "SELECT count(*) FROM documents d WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)"
        with self._lock:
            return int(self._db.execute(sql + (f" AND {where}" if where else ""), parameters).fetchone()[0])
