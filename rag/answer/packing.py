"""What quick mode gives the model to read: the prompt packed with passages up to a token budget (a share of the
context window, `settings.context`), not a fixed count.

From `context.candidates` retrieved chunks, in rank order, passages are taken while they fit the budget. Chunks
that neighbour each other in one document (consecutive ordinals on the same page or in the same section) are
joined into one passage with their overlap removed, so the model reads whole tables and paragraphs; the top
hits also bring their immediate neighbours when those fit.

Two rules keep the document a question is about in the prompt:
- one document may fill at most `per_document / sources` of the budget (the share the old cap of 3 in 6 gave it)
  before other documents' passages come first; a document the question names (`named_documents`) has no cap;
- a passage of a document none of whose chunks reaches `min_relevance` (an unrelated document) never takes the
  place of a further passage of a relevant document, cap or not: unrelated documents are read only when every
  candidate passage of the relevant ones fitted. (Asked how much memory gpt-oss-120b needs over
  a Spanish article among other files, the chunk with the answer used to lose its place to unrelated files.)

`pack` is the pure core; `gather` and `pack_prompt` read the index and the settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

from rag.answer.prompt import BLOCK_SEPARATOR_TOKENS, Exchange, Prompt, build_prompt, source_block
from rag.index.index import Index
from rag.llm.tokens import count_tokens, estimate_tokens, exact_for
from rag.records import Effort, Filters, Hit
from rag.search.retrieve import named_documents, search
from rag.settings import Settings

NEIGHBOUR_HITS = 3  # the top hits whose immediate neighbours (same page or section) are read with them
MIN_OVERLAP_CHARS = 12  # a shorter match of one chunk's end and the next one's start is a coincidence


@dataclass(frozen=True)
class Piece:
    """A candidate chunk and its place in its document."""

    hit: Hit
    document_id: str
    ordinal: int


def follows(first: Piece, second: Piece) -> bool:
    """Whether `second` directly follows `first` in one document, on the same page or in the same section."""
    return (
        first.document_id == second.document_id
        and second.ordinal == first.ordinal + 1
        and first.hit.headings == second.hit.headings
        and (second.hit.page_start <= first.hit.page_end or bool(first.hit.headings))
    )


def join_text(first: str, second: str) -> str:
    """`first` then `second`, without the text they share: consecutive chunks repeat the last sentences of the
    one before (`chunking.overlap_tokens`). The shared part starts at a word in `first` and ends at one in
    `second`; with none, the two are joined as paragraphs."""
    if len(second) < MIN_OVERLAP_CHARS:
        return first if first.endswith(second) else f"{first}\n\n{second}"
    lead = second[:MIN_OVERLAP_CHARS]
    at = first.find(lead, max(0, len(first) - len(second)))
    while at != -1:  # the earliest match is the longest overlap
        tail = first[at:]
        if (
            second.startswith(tail)
            and (at == 0 or first[at - 1].isspace())
            and (len(tail) == len(second) or second[len(tail)].isspace())
        ):
            return first + second[len(tail):]
        at = first.find(lead, at + 1)
    return f"{first}\n\n{second}"


def merged_hit(group: Sequence[Piece]) -> Hit:
    """One passage of consecutive chunks (in document order). Its chunk_id is the first chunk's; what cites it
    (grounding, citations) reads its text and its page range, which cover all of them."""
    text = group[0].hit.text
    for piece in group[1:]:
        text = join_text(text, piece.hit.text)
    best = min(group, key=lambda piece: piece.hit.rank)
    similarities = [piece.hit.similarity for piece in group if piece.hit.similarity is not None]
    first = group[0].hit
    return replace(
        first,
        rank=best.hit.rank,
        score=max(piece.hit.score for piece in group),
        page_start=min(piece.hit.page_start for piece in group),
        page_end=max(piece.hit.page_end for piece in group),
        text=text,
        similarity=max(similarities) if similarities else None,
    )


def groups_of(pieces: Sequence[Piece], merge: bool) -> list[list[Piece]]:
    """The pieces of one document as passages: runs of consecutive chunks when `merge`, else one each."""
    ordered = sorted(pieces, key=lambda piece: piece.ordinal)
    groups: list[list[Piece]] = []
    for piece in ordered:
        if merge and groups and follows(groups[-1][-1], piece):
            groups[-1].append(piece)
        else:
            groups.append([piece])
    return groups


def packing_order(
    pieces: Sequence[Piece],
    cost: Callable[[Hit], int],
    document_budget: int,
    min_relevance: float,
    uncapped: frozenset[str] = frozenset(),
) -> list[list[Piece]]:
    """The pieces in four tiers, offered to the budget in this order, each in rank order:
    0. relevant documents' pieces within their share of the budget (`document_budget` tokens; none for the
       documents in `uncapped`),
    1. relevant documents' further pieces,
    2. unrelated documents' pieces within their share, 3. their further pieces.
    A document is relevant when one of its pieces reaches `min_relevance` (every document is when that is 0
    or less, or when none reaches it)."""
    relevant = {piece.document_id for piece in pieces if min_relevance <= 0 or
                (piece.hit.similarity is not None and piece.hit.similarity >= min_relevance)}
    if not relevant:
        relevant = {piece.document_id for piece in pieces}
    used: dict[str, int] = {}
    tiers: list[list[Piece]] = [[], [], [], []]
    for piece in sorted(pieces, key=lambda piece: piece.hit.rank):
        document = piece.document_id
        spent = used.get(document, 0)
        within = document in uncapped or spent == 0 or spent + cost(piece.hit) <= document_budget
        if within:
            used[document] = spent + cost(piece.hit)
        tiers[(0 if document in relevant else 2) + (0 if within else 1)].append(piece)
    return tiers


def pack(
    pieces: Sequence[Piece],
    budget: int,
    cost: Callable[[Hit], int],
    *,
    document_budget: int,
    min_relevance: float,
    merge: bool = True,
    neighbours: Mapping[str, Sequence[Piece]] | None = None,
    uncapped: frozenset[str] = frozenset(),
) -> list[Hit]:
    """The passages to give the model, numbered (ranked 1..n) in rank order of their best chunk, together
    costing at most `budget` (`cost` of a passage: its source block's tokens and the separator).

    `neighbours`: chunk id -> the chunks next to it (same page or section), read with it when they fit; they
    take its rank."""
    tiers = packing_order(pieces, cost, document_budget, min_relevance, uncapped)
    order = [piece for tier in tiers for piece in tier]
    # Unrelated documents come in only when every passage of the relevant ones did: never in the room left
    # by a relevant passage too long for it.
    unrelated = {(piece.document_id, piece.ordinal) for piece in tiers[2] + tiers[3]}
    relevant_left_out = False
    pulled_by: dict[str, str] = {}  # a neighbour's chunk id -> the hit that brought it
    if merge and neighbours:
        known = {(piece.document_id, piece.ordinal) for piece in pieces}
        with_neighbours: list[Piece] = []
        for piece in order:
            with_neighbours.append(piece)
            for near in neighbours.get(piece.hit.chunk_id, ()):
                if (near.document_id, near.ordinal) not in known:
                    known.add((near.document_id, near.ordinal))
                    with_neighbours.append(replace(near, hit=replace(near.hit, rank=piece.hit.rank)))
                    pulled_by[near.hit.chunk_id] = piece.hit.chunk_id
        order = with_neighbours
    chosen: dict[str, list[Piece]] = {}
    spent: dict[str, int] = {}  # tokens of each document's passages
    total = 0
    group_cost: dict[tuple[str, ...], int] = {}  # a passage's cost, by its chunks

    def cost_of(group: list[Piece]) -> int:
        key = tuple(piece.hit.chunk_id for piece in group)
        if key not in group_cost:
            group_cost[key] = cost(merged_hit(group))
        return group_cost[key]

    taken: set[str] = set()
    for piece in order:
        document = piece.document_id
        anchor = pulled_by.get(piece.hit.chunk_id)
        if anchor is not None and anchor not in taken:
            continue  # a neighbour is read with its hit, never instead of it
        is_unrelated = (document, piece.ordinal) in unrelated
        if is_unrelated and relevant_left_out:
            break
        trial = [*chosen.get(document, []), piece]
        trial_cost = sum(cost_of(group) for group in groups_of(trial, merge))
        if total - spent.get(document, 0) + trial_cost > budget:
            relevant_left_out = relevant_left_out or (not is_unrelated and anchor is None)
            continue  # a shorter, lower-placed piece may still fit
        total += trial_cost - spent.get(document, 0)
        chosen[document], spent[document] = trial, trial_cost
        taken.add(piece.hit.chunk_id)
    passages = [merged_hit(group) for kept in chosen.values() for group in groups_of(kept, merge)]
    passages.sort(key=lambda hit: hit.rank)
    return [replace(hit, rank=number) for number, hit in enumerate(passages, start=1)]


# ----- the shell: the index and the settings -----


def candidate_cap(settings: Settings) -> int:
    """Per-document cap of the candidates search returns: the retrieval cap (per_document of `sources`
    passages) scaled to `context.candidates` (50 of 100), so a long relevant document is not cut to 3 of 100."""
    tuning = settings.retrieval
    return max(tuning.per_document, math.ceil(settings.context.candidates * tuning.per_document / settings.sources))


def gather(index: Index, query: str, settings: Settings, filters: Filters | None = None) -> list[Hit]:
    """The candidates quick mode packs its prompt from, best first."""
    tuning = replace(settings.retrieval, per_document=candidate_cap(settings))
    return search(index, query, settings.context.candidates, filters=filters, tuning=tuning)


def nearest(hits: Sequence[Hit], settings: Settings) -> list[Hit]:
    """The top `sources` candidates: what the "is anything relevant?" check reads (its threshold,
    `min_relevance`, was tuned on the best of the top 6) and what a refusal shows."""
    return list(hits[: settings.sources])


def pack_prompt(
    question: str,
    query: str,
    hits: Sequence[Hit],
    index: Index,
    settings: Settings,
    reserve_tokens: int,
    history: Sequence[Exchange] = (),
    effort: Effort = "medium",
    today: date | None = None,
) -> Prompt:
    """Quick mode's prompt: `hits` (from `gather`) packed into `context.share` of the context window, or into
    what the window leaves after the rules, the history, the question and `reserve_tokens` for the reply
    when that is less (then with a notice)."""
    exact = exact_for(settings.model)
    count = count_tokens if exact else estimate_tokens
    bare = build_prompt(question, [], settings.num_ctx, reserve_tokens, history, effort, today, exact=exact)
    share_budget = int(settings.context.share * settings.num_ctx)
    room = bare.budget_tokens - bare.estimated_tokens
    budget = min(share_budget, room)

    def cost(hit: Hit) -> int:
        return count(source_block(99, hit)) + BLOCK_SEPARATOR_TOKENS

    rows = index.catalog.chunks_by_id([hit.chunk_id for hit in hits])
    pieces = [Piece(hit, rows[hit.chunk_id].document_id, rows[hit.chunk_id].ordinal)
              for hit in hits if hit.chunk_id in rows]
    neighbours: dict[str, list[Piece]] = {}
    if settings.context.merge_neighbours and pieces:
        top = sorted(pieces, key=lambda piece: piece.hit.rank)[:NEIGHBOUR_HITS]
        places = index.catalog.chunks_at(
            [(piece.document_id, piece.ordinal + step) for piece in top for step in (-1, 1)])
        for piece in top:
            for step in (-1, 1):
                row = places.get((piece.document_id, piece.ordinal + step))
                if row is None:
                    continue
                near = Piece(Hit(rank=piece.hit.rank, score=piece.hit.score, path=row.path,
                                 page_start=row.page_start, page_end=row.page_end, chunk_id=row.id,
                                 text=row.text, headings=row.headings), row.document_id, row.ordinal)
                pair = (near, piece) if step < 0 else (piece, near)
                if follows(*pair):
                    neighbours.setdefault(piece.hit.chunk_id, []).append(near)
    tuning = settings.retrieval
    named = frozenset(named_documents(index, query, tuning.named_document_terms))
    passages = pack(
        pieces, budget, cost,
        document_budget=int(budget * tuning.per_document / settings.sources),
        min_relevance=settings.min_relevance,
        merge=settings.context.merge_neighbours,
        neighbours=neighbours,
        uncapped=named,
    )
    prompt = build_prompt(question, passages, settings.num_ctx, reserve_tokens, history, effort, today,
                          exact=exact)
    notices: tuple[str, ...] = ()
    if room < share_budget and len(passages) < len(pieces):
        notices = (
            f"The context window (ARCHIVIST_NUM_CTX={settings.num_ctx:,}) left room for {max(room, 0):,} tokens "
            f"of sources, less than the {share_budget:,} the settings allow (context.share), so fewer passages "
            "were given to the model. Raise ARCHIVIST_NUM_CTX for more.",
        )
    return replace(prompt, notices=notices)
