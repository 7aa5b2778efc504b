"""Finding the passages that best answer a question: dense (Chroma), lexical (BM25 over SQLite FTS5), or
both fused by reciprocal rank fusion, with a cap on chunks per document and optional filters."""

from __future__ import annotations

import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Literal

from rag.index.index import Index
from rag.records import Filters, Hit, Vectors
from rag.search.fusion import cap_per_group, convex_combination, reciprocal_rank_fusion

# Re-exported: callers of `search` name its tuning type from here.
from rag.settings import RetrievalSettings as RetrievalSettings

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")

# Words too common to help BM25 find anything; dropping them also keeps the FTS query short.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under until up very was
    we were what when where which while who whom why will with would you your yours yourself yourselves""".split()
)
_TERM = re.compile(r"[^\W_]+", re.UNICODE)
_ALPHA_DIGIT = re.compile(r"\d+|[^\W\d_]+", re.UNICODE)

def query_terms(query: str, drop_stop_words: bool = True) -> list[str]:
    """The query's words for BM25, lower-cased, without stop words (unless that would leave none), plus two
    spellings that documents and file names use for the same thing:

    - a word mixing letters and digits also gives its parts ("FY2018" finds "2018", "Q3FY22" finds "fy22");
    - a run of capitalised words also gives them joined ("Best Buy" finds "BESTBUY_2019_10K.pdf",
      "American Water Works" finds "AmericanWaterWorks").
    """
    found = _TERM.findall(query)
    words = [word.lower() for word in found]
    kept = [word for word in words if word not in STOP_WORDS] if drop_stop_words else words
    terms = kept or words
    extra: list[str] = []
    for word in terms:
        parts = _ALPHA_DIGIT.findall(word)
        if len(parts) > 1:
            extra += [part for part in parts if len(part) >= 2]
    for run in _capitalised_runs(query):
        for size in range(2, len(run) + 1):
            extra += ["".join(run[start : start + size]).lower() for start in range(len(run) - size + 1)]
    return list(dict.fromkeys(terms + extra))

def _capitalised_runs(query: str, longest: int = 4) -> list[list[str]]:
    """Runs of capitalised, letters-only words separated by nothing but spaces (names), each at most
    `longest` words."""
    runs: list[list[str]] = []
    current: list[str] = []
    end = 0
    for match in _TERM.finditer(query):
        word = match.group()
        joined = bool(current) and query[end : match.start()].isspace()
        end = match.end()
        if not joined and len(current) >= 2:
            runs.append(current[:longest])
        if not joined:
            current = []
        if word[:1].isupper() and word.isalpha() and word.lower() not in STOP_WORDS:
            current.append(word)
        else:
            if len(current) >= 2:
                runs.append(current[:longest])
            current = []
    if len(current) >= 2:
        runs.append(current[:longest])
    return runs

def dense_ranking(index: Index, vector: Vectors, depth: int, filters: Filters) -> list[tuple[str, float]]:
    # Over-fetch when filtering, since the filter applies after the nearest-neighbour search.
    nearest = index.vectors.query(vector, depth * (4 if filters.active else 1) + 10, filters.document_ids)
    known = index.catalog.chunk_documents([chunk_id for chunk_id, _ in nearest], filters)
    return [(chunk_id, score) for chunk_id, score in nearest if chunk_id in known][:depth]


def lexical_ranking(
    index: Index, query: str, depth: int, filters: Filters, tuning: RetrievalSettings
) -> list[tuple[str, float]]:
    terms = query_terms(query, tuning.drop_stop_words)
    return index.catalog.lexical_search(terms, depth, tuning.bm25_weights, filters)


def named_documents(index: Index, query: str, minimum: int) -> tuple[str, ...]:
    """The documents whose file names hold the most of the query's words, if that is at least `minimum`."""
    if minimum <= 0:
        return ()
    counts = index.catalog.documents_named(query_terms(query))
    best = max(counts.values(), default=0)
    if best < minimum:
        return ()
    return tuple(sorted(doc_id for doc_id, count in counts.items() if count == best))

# The lexical arm runs here while the calling thread embeds the query and asks Chroma: SQLite, ONNX Runtime
# and Chroma all release the GIL, so a hybrid search takes about as long as its slower arm, not the sum.
# Made on first use, closed by close_lexical_pool() (the page's service does on close); a search after that
# makes a new one.
_LEXICAL_POOL: ThreadPoolExecutor | None = None
_LEXICAL_POOL_LOCK = threading.Lock()

def _lexical_pool() -> ThreadPoolExecutor:
    global _LEXICAL_POOL
    with _LEXICAL_POOL_LOCK:
        if _LEXICAL_POOL is None:
            _LEXICAL_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="archivist-lexical")
        return _LEXICAL_POOL

def close_lexical_pool() -> None:
    """End the lexical arm's threads (after the searches in flight); the next search starts new ones."""
    global _LEXICAL_POOL
    with _LEXICAL_POOL_LOCK:
        pool, _LEXICAL_POOL = _LEXICAL_POOL, None
    if pool is not None:
        pool.shutdown(wait=True)

Ranking = list[tuple[str, float]]

def search(
    index: Index,
    query: str,
    k: int,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
    tuning: RetrievalSettings | None = None,
) -> list[Hit]:
    """The k best chunks for the query, read back through the catalog (orphan vectors never show). `tuning`
    is the settings' `retrieval` section (its defaults when None).

    When the query names files (see `named_documents`), their chunks come first, with no per-document cap
    among them (the question is about them), and the rest of the library fills the remaining places."""
    query = query.strip()
    if not query or k <= 0:
        return []
    filters = filters or Filters()
    tuning = tuning or RetrievalSettings()
    index.refresh()
    named = () if filters.document_ids else named_documents(index, query, tuning.named_document_terms)
    scopes = [filters] + ([replace(filters, document_ids=named)] if named else [])
    depth = max(k + (k if named else 0), tuning.lexical_depth)
    lexical: list[Future[Ranking]] = []
    if mode in ("lexical", "hybrid"):
        lexical = [_lexical_pool().submit(lexical_ranking, index, query, depth, scope, tuning) for scope in scopes]
    dense: list[Ranking] = []
    if mode in ("dense", "hybrid"):
        vector = index.embedder.embed_query(query)
        depth = max(k + (k if named else 0), tuning.dense_depth)
        dense = [dense_ranking(index, vector, depth, scope) for scope in scopes]
    rankings = [[*([dense[i]] if dense else []), *([lexical[i].result()] if lexical else [])]
                for i in range(len(scopes))]
    similarity = {chunk_id: score for ranking in dense for chunk_id, score in ranking}
    if not named:
        return _fused_hits(index, rankings[0], k, mode, tuning, similarity)
    first = _fused_hits(
        index, rankings[1], k, mode, replace(tuning, per_document=max(tuning.per_document, k)), similarity
    )
    seen = {hit.chunk_id for hit in first}
    rest = [hit for hit in _fused_hits(index, rankings[0], k + len(first), mode, tuning, similarity)
            if hit.chunk_id not in seen]
    return [replace(hit, rank=rank) for rank, hit in enumerate([*first, *rest][:k], start=1)]

def _fused_hits(
    index: Index, rankings: list[Ranking], k: int, mode: Mode, tuning: RetrievalSettings,
    similarity: dict[str, float],
) -> list[Hit]:
    """Fuse the arms' rankings, cap chunks per document, and read the best k back from the catalog."""
    if mode == "hybrid" and tuning.fusion == "convex":
        fused = convex_combination(rankings, [tuning.dense_weight, tuning.lexical_weight])
    elif mode == "hybrid":
        fused = reciprocal_rank_fusion(
            [[chunk_id for chunk_id, _ in ranking] for ranking in rankings],
            k=tuning.rrf_k,
            weights=[tuning.dense_weight, tuning.lexical_weight],
        )
    else:
        fused = rankings[0]
    rows = index.catalog.chunks_by_id([chunk_id for chunk_id, _ in fused[: max(k * 10, 100)]])
    capped = cap_per_group(
        [(chunk_id, score) for chunk_id, score in fused if chunk_id in rows],
        {chunk_id: row.document_id for chunk_id, row in rows.items()},
        tuning.per_document,
    )
    hits: list[Hit] = []
    for chunk_id, score in capped[:k]:
        row = rows[chunk_id]
        hits.append(
            Hit(rank=len(hits) + 1, score=round(score, 6), path=row.path, page_start=row.page_start,
                page_end=row.page_end, chunk_id=row.id, text=row.text, headings=row.headings,
                similarity=round(similarity[chunk_id], 6) if chunk_id in similarity else None)
        )
    return hits

