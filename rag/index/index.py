"""The index: the catalog (truth) plus the vector store plus the embedder, written in a crash-safe order.

Writing one document:
  1. give every chunk a stable id (document id + text hash), so unchanged text keeps its id;
  2. embed only texts nobody holds: not a chunk of the catalog (its vector is read back from the vector
     store) and not the embedding cache (vectors of texts no chunk holds any more); store the new vectors;
  3. commit the catalog (document row + chunk rows) in one transaction;
  4. move the vectors of chunks that are gone into the bounded cache, and delete them from the store.
A crash between steps leaves the catalog at the old or the new version; orphan vectors are invisible to
search (hits are read back through the catalog) and `reconcile()` removes them and restores missing ones.

A document of more than `part_chunks` chunks repeats steps 2-3 per part, its row marked `partial` until the
last part's commit (which also deletes the chunks the new version lacks): an interruption loses at most one
part, and the next write of the same version finds the committed parts under the same ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.index.catalog import EMBEDDING_CACHE_MAX, Catalog, ChunkRow, DocumentRow
from rag.index.embedder import Embedder
from rag.index.vectors import Metadata, VectorStore
from rag.records import Vectors

logger = logging.getLogger(__name__)

PART_CHUNKS = 500  # a larger document commits in parts of this many chunks (see Index._write_in_parts)
STAGED_MAX = 8192  # vectors embedded ahead of their write, at most (~12 MB)


@dataclass(frozen=True)
class NewChunk:
    """A chunk as the chunker makes it, before it has an id."""

    text: str
    page_start: int
    page_end: int
    headings: tuple[str, ...] = ()

    @property
    def embedding_text(self) -> str:
        return embedding_text(self.text, self.headings)


def embedding_text(text: str, headings: Sequence[str]) -> str:
    """What is embedded: the heading path gives a short passage its context."""
    return " > ".join(headings) + "\n" + text if headings else text


@dataclass(frozen=True)
class FileFacts:
    """What the file system says about a file, recorded to notice changes cheaply."""

    path: str
    content_hash: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DocumentWrite:
    """A new version of one document, ready to be indexed."""

    facts: FileFacts
    kind: str
    page_count: int
    chunks: tuple[NewChunk, ...]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _PlannedWrite:
    write: DocumentWrite
    document: DocumentRow
    rows: list[ChunkRow]
    old: dict[str, tuple[int, int, int, str]]  # the document's chunks now: id -> (ordinal, pages, text hash)


@dataclass
class WriteResult:
    chunks: int = 0
    embedded: int = 0  # texts sent through the model (cache misses)
    added_vectors: int = 0
    removed_vectors: int = 0


@dataclass
class ReconcileResult:
    orphans_removed: int = 0
    missing_restored: int = 0
    details: list[str] = field(default_factory=list)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def chunk_ids(document_id: str, hashes: Sequence[str]) -> list[str]:
    """Stable ids: the same text in the same document keeps its id however the rest moves."""
    seen: Counter[str] = Counter()
    ids = []
    for digest in hashes:
        seen[digest] += 1
        key = f"{document_id}\0{digest}\0{seen[digest]}".encode()
        ids.append(hashlib.sha256(key).hexdigest()[:24])
    return ids


class Index:
    """Catalog + vectors + embedder. Writers must hold the data folder's WriterLock."""

    def __init__(
        self,
        catalog: Catalog,
        vectors: VectorStore,
        embedder: Embedder | Callable[[], Embedder],
        embed_batch_size: int = 64,
        model_name: str | None = None,
    ) -> None:
        self.catalog = catalog
        self._model_name = model_name  # keys the embedding cache before the model has loaded
        self.vectors = vectors
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self.embed_batch_size = embed_batch_size
        # Told each named write step as the write reaches it (see _step's callers); None in normal use. The
        # crash tests kill the process at a chosen step through it (tests/crashing_cli.py).
        self.step_hook: Callable[[str], None] | None = None
        self._seen_version: int | None = catalog.data_version()
        self._refresh_lock = threading.Lock()
        # Vectors embedded ahead of their write (ensure_vectors), by text hash; taken by the write.
        self._staged: dict[str, Vectors] = {}
        self._from_cache: set[str] = set()  # text hashes whose vectors came from the cache, to drop there
        self._staged_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use: `status` never needs it, and loading takes seconds."""
        with self._embedder_lock:  # two threads asking at once must not load two copies
            if not isinstance(self._embedder, Embedder):
                self._embedder = self._embedder()
            return self._embedder

    def close(self) -> None:
        if isinstance(self._embedder, Embedder):
            self._embedder.close()  # its thread pool (a model never loaded has none)
        self.vectors.close()
        self.catalog.close()

    def refresh(self) -> None:
        """Before reading: if another process wrote since we last looked, reload the vector store.
        One refresh at a time: page sessions searching at once reopen the store once, not once each (the
        store itself keeps queries out while it reopens)."""
        with self._refresh_lock:
            version = self.catalog.data_version()
            if self._seen_version is not None and version != self._seen_version:
                self.vectors.reopen()
            self._seen_version = version

    def _step(self, name: str) -> None:
        if self.step_hook is not None:
            self.step_hook(name)

    # ----- writing -----
    def write_document(
        self,
        facts: FileFacts,
        kind: str,
        page_count: int,
        chunks: Sequence[NewChunk],
        warnings: Sequence[str] = (),
        on_embedded: Callable[[int], None] | None = None,
    ) -> WriteResult:
        return self.write_documents([DocumentWrite(facts, kind, page_count, tuple(chunks), tuple(warnings))],
                                    on_embedded)[0]

    def write_documents(
        self,
        writes: Sequence[DocumentWrite],
        on_embedded: Callable[[int], None] | None = None,
        on_part: Callable[[DocumentWrite, int, int], None] | None = None,
        part_chunks: int = PART_CHUNKS,
    ) -> list[WriteResult]:
        """Index new versions of documents, crash-safe in this order: every new vector is in the store before
        its document's catalog commit, and stale vectors are deleted only after it.

        Documents of up to `part_chunks` chunks are written together: their vectors go in one store call
        (each call costs the store ~20 ms, however few vectors it carries), then each commits on its own, so a
        crash leaves each one at its old or its new version. A larger document is written in parts of
        `part_chunks` (see `_write_in_parts`); `on_part(write, chunks done, chunks)` follows its progress."""
        results: list[WriteResult | None] = [None] * len(writes)
        small = [i for i, write in enumerate(writes) if len(write.chunks) <= part_chunks]
        if small:
            for i, result in zip(small, self._write_together([writes[i] for i in small], on_embedded), strict=True):
                results[i] = result
        for i, write in enumerate(writes):
            if results[i] is None:
                results[i] = self._write_in_parts(write, on_embedded, on_part, part_chunks)
        return [result for result in results if result is not None]

    def _write_together(
        self, writes: Sequence[DocumentWrite], on_embedded: Callable[[int], None] | None
    ) -> list[WriteResult]:
        planned = [self._plan_write(write) for write in writes]
        fresh = [(plan, i) for plan in planned for i, row in enumerate(plan.rows) if row.id not in plan.old]
        results = [WriteResult(chunks=len(plan.rows)) for plan in planned]
        if fresh:
            texts = {plan.rows[i].text_hash: plan.write.chunks[i].embedding_text for plan, i in fresh}
            vectors, missed = self._vectors_for(texts, on_embedded)
            for plan, result in zip(planned, results, strict=True):
                mine = {row.text_hash for row in plan.rows if row.id not in plan.old}
                result.embedded = len(mine & missed)
                missed -= mine  # a text two documents share was embedded once: count it once
                if mine:
                    self._step("before-vectors")
            self.vectors.upsert(
                [plan.rows[i].id for plan, i in fresh],
                np.stack([vectors[plan.rows[i].text_hash] for plan, i in fresh]),
                [self._metadata(plan.rows[i], plan.write.kind) for plan, i in fresh],
            )
            del vectors
        stale: dict[str, str] = {}
        for plan, result in zip(planned, results, strict=True):
            result.added_vectors = sum(1 for row in plan.rows if row.id not in plan.old)
            self._step("before-catalog")
            with self.catalog.transaction() as db:
                Catalog.put_document(db, plan.document)
                Catalog.replace_chunks(db, plan.document.id, plan.rows)
            self._step("after-catalog")
            gone = set(plan.old) - {row.id for row in plan.rows}
            result.removed_vectors = len(gone)
            stale.update((chunk_id, plan.old[chunk_id][3]) for chunk_id in sorted(gone))
        self.retire(stale)
        self._settle_cache()
        return results

    def _write_in_parts(
        self,
        write: DocumentWrite,
        on_embedded: Callable[[int], None] | None,
        on_part: Callable[[DocumentWrite, int, int], None] | None,
        part_chunks: int,
    ) -> WriteResult:
        """A large document, committed part by part so an interruption loses at most one part's work and only
        one part's vectors are held at a time.

        Until its last part the document's row says `partial` (with the new content hash); its chunks are then
        the new version's first parts plus whatever the old version had. A later run (after a crash or a stop)
        sees `partial`, plans the same version again, and finds the committed parts' chunks already there
        under the same ids (ids derive from document and text), so it embeds and inserts only the rest. The
        last part's commit deletes the chunks the new version lacks and marks the document indexed: nothing is
        lost, nothing is doubled."""
        plan = self._plan_write(write)
        rows, old = plan.rows, plan.old
        partial = dataclasses.replace(plan.document, status="partial")
        result = WriteResult(chunks=len(rows))
        if on_part is not None:
            on_part(write, 0, len(rows))
        for start in range(0, len(rows), part_chunks):
            part = rows[start : start + part_chunks]
            last = start + part_chunks >= len(rows)
            fresh = [row for row in part if row.id not in old]
            if fresh:
                texts = {row.text_hash: embedding_text(row.text, row.headings) for row in fresh}
                vectors, missed = self._vectors_for(texts, on_embedded)
                result.embedded += len(missed)
                self._step("before-vectors")
                self.vectors.upsert(
                    [row.id for row in fresh],
                    np.stack([vectors[row.text_hash] for row in fresh]),
                    [self._metadata(row, write.kind) for row in fresh],
                )
                result.added_vectors += len(fresh)
                del vectors, texts
            self._step("before-catalog" if last else "before-part")
            with self.catalog.transaction() as db:
                Catalog.put_document(db, plan.document if last else partial)
                Catalog.add_chunks(db, plan.document.id, part, old)
                if last:
                    gone = set(old) - {row.id for row in rows}
                    Catalog.delete_chunks(db, sorted(gone))
            self._step("after-catalog" if last else "after-part")
            if on_part is not None:
                on_part(write, min(start + part_chunks, len(rows)), len(rows))
        gone = set(old) - {row.id for row in rows}
        result.removed_vectors = len(gone)
        self.retire({chunk_id: old[chunk_id][3] for chunk_id in sorted(gone)})
        self._settle_cache()
        return result

    def _settle_cache(self) -> None:
        """Drop from the cache the vectors taken from it that a chunk now holds (the store has them)."""
        with self._staged_lock:
            taken, self._from_cache = self._from_cache, set()
        held = self.catalog.held_text_hashes(taken) if taken else set()
        if held:
            self.catalog.uncache_vectors(self.embedder.name, held)

    def retire(self, chunks: dict[str, str]) -> None:
        """Delete the vectors of chunks the catalog no longer has ({chunk id: text hash}), keeping (in the
        bounded embedding cache) those of texts no other chunk holds: an undone edit or a file put back is
        not embedded again. Called after the catalog commit; a crash before it only leaves orphan vectors."""
        if not chunks:
            return
        held = self.catalog.held_text_hashes(chunks.values())
        keep = [chunk_id for chunk_id, digest in chunks.items() if digest not in held][-EMBEDDING_CACHE_MAX:]
        model = self._embedder.name if isinstance(self._embedder, Embedder) else self._model_name
        # (No model name known: nothing to key the cache by; the text would be embedded again.)
        found = self.vectors.vectors(keep) if keep and model else {}
        self.vectors.delete(list(chunks))  # first: the store matches the catalog again as soon as it can
        if found and model:
            self.catalog.cache_vectors(model, {chunks[i]: vector for i, vector in found.items()})

    def _plan_write(self, write: DocumentWrite) -> _PlannedWrite:
        facts = write.facts
        existing = self.catalog.document_by_path(facts.path)
        document_id = existing.id if existing else uuid.uuid4().hex
        old = self.catalog.chunk_keys(document_id) if existing else {}
        hashes = [text_hash(chunk.embedding_text) for chunk in write.chunks]
        rows = [
            ChunkRow(id=chunk_id, document_id=document_id, ordinal=ordinal, page_start=chunk.page_start,
                     page_end=chunk.page_end, headings=chunk.headings, text=chunk.text, text_hash=digest)
            for ordinal, (chunk_id, digest, chunk) in enumerate(
                zip(chunk_ids(document_id, hashes), hashes, write.chunks, strict=True)
            )
        ]
        document = DocumentRow(
            id=document_id, path=facts.path, kind=write.kind, content_hash=facts.content_hash, size=facts.size,
            mtime_ns=facts.mtime_ns, status="indexed", error=None, page_count=write.page_count,
            warnings=write.warnings, updated_at=time.time(),
        )
        return _PlannedWrite(write, document, rows, old)

    def record_problem(self, facts: FileFacts, status: str, reason: str, kind: str | None = None) -> None:
        """Note a file that failed or was skipped; any older indexed version of it is removed."""
        existing = self.catalog.document_by_path(facts.path)
        old = self.catalog.chunk_keys(existing.id) if existing else {}
        document = DocumentRow(
            id=existing.id if existing else uuid.uuid4().hex, path=facts.path, kind=kind,
            content_hash=facts.content_hash or None, size=facts.size, mtime_ns=facts.mtime_ns, status=status,
            error=reason, page_count=0, warnings=(), updated_at=time.time(),
        )
        with self.catalog.transaction() as db:
            Catalog.put_document(db, document)
            Catalog.replace_chunks(db, document.id, [])
        self.retire({chunk_id: key[3] for chunk_id, key in old.items()})

    def move_document(self, old_path: str, facts: FileFacts) -> bool:
        """A file moved or renamed with the same content: change its path, embed nothing."""
        existing = self.catalog.document_by_path(old_path)
        if existing is None or self.catalog.document_by_path(facts.path) is not None:
            return False
        with self.catalog.transaction() as db:
            Catalog.move_document(db, existing.id, facts.path, facts.size, facts.mtime_ns)
        return True

    def touch_document(self, facts: FileFacts) -> None:
        """Same content, new mtime (e.g. `touch`): remember it so the next scan skips hashing."""
        with self.catalog.transaction() as db:
            Catalog.touch_document(db, facts.path, facts.size, facts.mtime_ns)

    def remove_document(self, path: str) -> bool:
        existing = self.catalog.document_by_path(path)
        if existing is None:
            return False
        old = self.catalog.chunk_keys(existing.id)
        with self.catalog.transaction() as db:
            Catalog.delete_document(db, existing.id)
        self.retire({chunk_id: key[3] for chunk_id, key in old.items()})
        return True

    def reconcile(self) -> ReconcileResult:
        """Make the vectors match the catalog exactly: drop orphans, restore what is missing."""
        result = ReconcileResult()
        catalog_ids = self.catalog.all_chunk_ids()
        vector_ids = self.vectors.ids()
        orphans = sorted(vector_ids - catalog_ids)
        if orphans:
            self.vectors.delete(orphans)
            result.orphans_removed = len(orphans)
        missing = sorted(catalog_ids - vector_ids)
        if missing:
            rows = list(self.catalog.chunks_by_id(missing).values())
            texts = {row.text_hash: embedding_text(row.text, row.headings) for row in rows}
            vectors, _ = self._vectors_for(texts, None)
            kinds = {doc.id: doc.kind or "" for doc in self.catalog.documents()}
            self.vectors.upsert(
                [row.id for row in rows],
                np.stack([vectors[row.text_hash] for row in rows]),
                [self._metadata(row, kinds.get(row.document_id, "")) for row in rows],
            )
            result.missing_restored = len(rows)
        if orphans or missing:
            logger.info("reconciled vectors: %d orphans removed, %d restored", len(orphans), len(missing))
        return result

    def ensure_vectors(self, texts: dict[str, str]) -> set[str]:
        """Have vectors ready for {text hash: text}, embedding only texts neither the index nor the cache
        holds, all in one go; returns the hashes embedded now. Lets a caller batch the chunks of many files
        together: the vectors wait in memory for the `write_documents` that stores them."""
        vectors, misses = self._vectors_for(texts, None)
        with self._staged_lock:
            self._staged.update(vectors)
            while len(self._staged) > STAGED_MAX:  # never written (a file failed meanwhile): oldest go first
                del self._staged[next(iter(self._staged))]
        return misses

    # ----- helpers -----
    def _vectors_for(
        self, texts: dict[str, str], on_embedded: Callable[[int], None] | None
    ) -> tuple[dict[str, Vectors], set[str]]:
        """Vectors for {text hash: text}: staged by `ensure_vectors`, else read from the vector store where a
        chunk holds the same text, else from the cache of texts no chunk holds, else embedded now. Returns
        them and the hashes embedded now."""
        found: dict[str, Vectors] = {}
        with self._staged_lock:
            for digest in texts:
                if digest in self._staged:
                    found[digest] = self._staged.pop(digest)
        wanted = [digest for digest in texts if digest not in found]
        if wanted:
            holders = self.catalog.chunk_ids_with_text(wanted)
            if holders:
                stored = self.vectors.vectors(list(holders.values()))
                found.update((digest, stored[chunk_id]) for digest, chunk_id in holders.items() if chunk_id in stored)
        model = self.embedder.name
        wanted = [digest for digest in texts if digest not in found]
        if wanted:
            cached = self.catalog.cached_vectors(model, wanted)
            found.update(cached)
            with self._staged_lock:
                self._from_cache.update(cached)  # leaves the cache once a chunk holds it (_settle_cache)
        misses = [digest for digest in texts if digest not in found]
        if misses:
            computed = self.embedder.embed(
                [texts[digest] for digest in misses], self.embed_batch_size, on_embedded
            )
            found.update(zip(misses, computed, strict=True))
        return found, set(misses)

    @staticmethod
    def _metadata(row: ChunkRow, kind: str) -> Metadata:
        # No path here: a move must not touch vectors. Retrieval reads paths from the catalog.
        return {"document_id": row.document_id, "kind": kind, "page_start": row.page_start,
                "page_end": row.page_end}


def open_index(
    data_dir: Path,
    embedder: Embedder | Callable[[], Embedder],
    vectors: VectorStore | None = None,
    embed_batch_size: int = 64,
    model_name: str | None = None,
    chroma_url: str | None = None,
) -> Index:
    """The index in `data_dir`: the catalog file plus Chroma's folder, created on first use; with
    `chroma_url`, the vectors live on that Chroma server instead."""
    from rag.index.vectors import ChromaServerVectorStore, ChromaVectorStore

    if vectors is None:
        name = model_name or (embedder.name if isinstance(embedder, Embedder) else "all-MiniLM-L6-v2")
        if chroma_url:
            vectors = ChromaServerVectorStore(chroma_url, name)  # first: an unreachable server opens nothing
        else:
            vectors = ChromaVectorStore(data_dir / "chroma", name)
    catalog = Catalog(data_dir / "catalog.sqlite3")
    cache_model = model_name or (embedder.name if isinstance(embedder, Embedder) else None)
    return Index(catalog, vectors, embedder, embed_batch_size, model_name=cache_model)
