"""The records every stage shares: a retrieved passage, search filters, a citation, the reasoning effort, a
vector batch. Kept apart so that answering does not import search, nor search the LLM clients, for their types."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, with everything needed to cite it."""

    rank: int  # 1-based, best first
    score: float  # higher is better: cosine similarity (dense), BM25 (lexical) or fused RRF score (hybrid)
    path: str
    page_start: int
    page_end: int
    chunk_id: str
    text: str
    headings: tuple[str, ...] = ()
    # Cosine similarity of the query and this chunk when the dense arm ranked it (None otherwise). Unlike
    # the fused score it means the same in every search, so "is anything relevant?" can be asked of it.
    similarity: float | None = None

    @property
    def pages_label(self) -> str:
        if self.page_start == self.page_end:
            return f"p. {self.page_start}"
        return f"pp. {self.page_start}–{self.page_end}"

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["headings"] = list(self.headings)
        return data


@dataclass(frozen=True)
class Filters:
    """Limit a search to a folder, file types and/or a file-name glob."""

    folder: str | None = None
    kinds: tuple[str, ...] = ()  # "pdf", "text", "markdown", "html", "docx"
    name_glob: str | None = None  # matched against the file name, e.g. "*2022*"
    document_ids: tuple[str, ...] = ()  # only these documents (the ones a question names)

    @property
    def active(self) -> bool:
        return bool(self.folder or self.kinds or self.name_glob or self.document_ids)


@dataclass(frozen=True)
class Citation:
    n: int
    path: str
    page_start: int
    page_end: int
    chunk_id: str
    quote: str  # the sentence of the passage that best supports what cites it
    quote_start: int = 0  # offsets of the quote in the passage's text
    quote_end: int = 0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Effort = Literal["low", "medium", "high"]  # gpt-oss reasoning effort


Vectors = npt.NDArray[np.float32]
