"""Finding the passages that best answer a question (dense retrieval; hybrid arrives later)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rag.index import Index


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, with everything needed to cite it."""

    rank: int  # 1-based, best first
    score: float  # cosine similarity, higher is better
    path: str
    page_start: int
    page_end: int
    chunk_id: str
    text: str
    headings: tuple[str, ...] = ()

    @property
    def pages_label(self) -> str:
        if self.page_start == self.page_end:
            return f"p. {self.page_start}"
        return f"pp. {self.page_start}–{self.page_end}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["headings"] = list(self.headings)
        return data


def search(index: Index, query: str, k: int) -> list[Hit]:
    """The k chunks nearest to the query, read back through the catalog (orphan vectors never show)."""
    query = query.strip()
    if not query or k <= 0:
        return []
    vector = index.embedder.embed_query(query)
    # Ask for a few extra: vectors the catalog no longer knows (a crash's leftovers) are dropped below.
    nearest = index.vectors.query(vector, k + 10)
    rows = index.catalog.chunks_by_id([chunk_id for chunk_id, _ in nearest])
    hits: list[Hit] = []
    for chunk_id, score in nearest:
        row = rows.get(chunk_id)
        if row is None:
            continue
        hits.append(
            Hit(rank=len(hits) + 1, score=round(score, 6), path=row.path, page_start=row.page_start,
                page_end=row.page_end, chunk_id=row.id, text=row.text, headings=row.headings)
        )
        if len(hits) == k:
            break
    return hits
