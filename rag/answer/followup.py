"""Follow-up questions: the search query is made standalone from the conversation.

"And in 2023?" searches badly on its own. When a question leans on the conversation (a pronoun, "also", or
too few words of its own), the LLM rewrites it as a question that stands alone; without an LLM, or when its
rewrite is unusable, the earlier question is put in front of the new one, which keeps its subject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer.prompt import NOT_IN_DOCUMENTS, Exchange, neutralise
from rag.llm.harmony import Conversation, SystemPart, Turn, chat_messages
from rag.search.retrieve import query_terms

REWRITE_INSTRUCTIONS = """\
Rewrite the user's last question so that it can be understood without the conversation: replace pronouns \
and references with what they stand for, and keep everything else as the user wrote it. Reply with the \
rewritten question only, on one line, without answering it."""

# Words that point back into the conversation.
_REFERRING = frozenset(
    """it its it's they them their theirs this that these those he him his she her hers there then also
    same former latter above previous earlier aforementioned such one ones else other others more""".split()
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
MIN_OWN_TERMS = 3  # a question with fewer content words of its own is taken as a follow-up
HISTORY_FOR_REWRITE = 3  # earlier exchanges shown to the rewriter
MAX_REWRITE_GROWTH = 4  # a rewrite longer than this many times question + last question is not a rewrite


def needs_context(question: str, history: Sequence[Exchange]) -> bool:
    """Whether the question probably depends on the earlier conversation."""
    if not history:
        return False
    words = {word.lower() for word in _WORD.findall(question)}
    return bool(words & _REFERRING) or len(query_terms(question)) < MIN_OWN_TERMS


def joined_query(question: str, history: Sequence[Exchange]) -> str:
    """The fallback: the earlier question in front of the new one."""
    return f"{history[-1].question.strip()} {question.strip()}" if history else question.strip()


def rewrite_messages(question: str, history: Sequence[Exchange]) -> list[dict[str, str]]:
    """The chat messages that ask the LLM for a standalone question (low effort, short reply)."""
    turns: list[Turn] = []
    for exchange in history[-HISTORY_FOR_REWRITE:]:
        turns += [Turn("user", neutralise(exchange.question)), Turn("assistant", neutralise(exchange.answer), "final")]
    turns.append(Turn("user", f"Rewrite this question so it stands alone: {neutralise(question.strip())}"))
    return chat_messages(Conversation(SystemPart(effort="low"), REWRITE_INSTRUCTIONS, tuple(turns)))


def accept_rewrite(rewrite: str, question: str, history: Sequence[Exchange]) -> str | None:
    """The rewrite as a query, or None when it is unusable (empty, an answer instead of a question, far too
    long)."""
    lines = [line.strip().strip('"“”') for line in rewrite.strip().splitlines() if line.strip()]
    if not lines:
        return None
    candidate = lines[0]
    limit = MAX_REWRITE_GROWTH * (len(question) + len(history[-1].question if history else ""))
    if NOT_IN_DOCUMENTS in candidate or len(candidate) > max(limit, 200) or not query_terms(candidate):
        return None
    return candidate
