"""Answering a question: make the query standalone, retrieve, decide whether anything is relevant, build the
grounded prompt, stream the model, then check the answer sentence by sentence.

`ask` is a generator of events, so a face can show the passages before the model starts and the answer as it
streams; the last event, `Finished`, carries the whole `Answer`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

from rag.answer.followup import accept_rewrite, joined_query, needs_context, rewrite_messages
from rag.answer.grounding import AnswerSentence, citations_for, ground_sentences
from rag.answer.packing import gather, nearest, pack_prompt
from rag.answer.prompt import NOT_IN_DOCUMENTS, Exchange
from rag.answer.support import SupportScorer
from rag.errors import LLMError
from rag.index.index import Index
from rag.llm.chat import INCOMPLETE, ChatModel, Delta, Usage
from rag.records import Citation, Effort, Filters, Hit
from rag.settings import Settings

logger = logging.getLogger(__name__)

# Ollama cuts a prompt longer than num_ctx down to exactly num_ctx tokens (logging "truncating input
# prompt"); a prompt_eval_count this close to num_ctx means it happened. Our packing keeps real prompts far
# below: num_ctx minus the reply's room minus a margin, by an estimate that errs high.
TRUNCATION_SLACK_TOKENS = 16


@dataclass
class Answer:
    question: str
    query: str = ""  # what was searched: the question, made standalone for a follow-up
    answer: str = ""
    reasoning: str = ""
    citations: list[Citation] = field(default_factory=list)
    sentences: list[AnswerSentence] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    found_relevant: bool = True  # False: nothing relevant was found, and the LLM was not asked
    prompt_tokens: int | None = None
    estimated_prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str | None = None
    truncated: bool = False  # the server cut the prompt to fit its context window
    notices: list[str] = field(default_factory=list)  # what the person should know about this answer

    @property
    def unsupported(self) -> list[str]:
        return [sentence.text for sentence in self.sentences if sentence.status == "unsupported"]

    @property
    def uncited(self) -> list[str]:
        return [sentence.text for sentence in self.sentences if sentence.status == "uncited"]

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "query": self.query,
            "answer": self.answer,
            "reasoning": self.reasoning,
            "found_relevant": self.found_relevant,
            "citations": [citation.to_json() for citation in self.citations],
            "sentences": [sentence.to_json() for sentence in self.sentences],
            "unsupported": self.unsupported,
            "uncited": self.uncited,
            "passages": [hit.to_json() for hit in self.passages],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "estimated_prompt_tokens": self.estimated_prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "truncated": self.truncated,
                "done_reason": self.done_reason,
            },
            "notices": self.notices,
        }


@dataclass(frozen=True)
class Searching:
    query: str  # what is searched for (a follow-up made standalone)


@dataclass(frozen=True)
class PassagesFound:
    passages: list[Hit]
    relevant: bool = True


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    answer: Answer


AnswerEvent = Searching | PassagesFound | ReasoningDelta | AnswerDelta | Finished


def is_relevant(hits: Sequence[Hit], threshold: float) -> bool:
    """Whether any passage is close enough in meaning to the question to ground an answer (the threshold,
    `Settings.min_relevance`, is tuned on SciFact train by bench/relevance_threshold.py)."""
    if threshold <= 0:
        return bool(hits)
    return any(hit.similarity is not None and hit.similarity >= threshold for hit in hits)


def reply_room(settings: Settings) -> int:
    """Tokens of the context window kept for the reply (reasoning and answer): num_predict, but never more
    than half the window, so a small window set alone still holds a prompt."""
    return min(settings.num_predict, settings.num_ctx // 2)


def standalone_query(question: str, history: Sequence[Exchange], chat: ChatModel | None) -> str:
    """The search query for `question`: itself, or for a follow-up a standalone rewrite (by the LLM when
    there is one, else the earlier question joined to it)."""
    if not needs_context(question, history):
        return question.strip()
    if chat is not None:
        try:
            rewrite = chat.complete(rewrite_messages(question, history), "low")
        except LLMError as error:
            logger.info("follow-up rewrite failed (%s); joining the questions instead", error)
        else:
            accepted = accept_rewrite(rewrite, question, history)
            if accepted is not None:
                return accepted
    return joined_query(question, history)


def ask(
    question: str,
    index: Index,
    chat: ChatModel,
    settings: Settings,
    effort: Effort | None = None,
    history: Sequence[Exchange] = (),
    filters: Filters | None = None,
    today: date | None = None,
) -> Iterator[AnswerEvent]:
    """Stream the answer. Passages come first, so a face can still show them if the LLM then fails."""
    effort = effort or settings.effort
    query = standalone_query(question, history, chat)
    yield Searching(query)
    hits = gather(index, query, settings, filters)  # context.candidates of them, packed below
    answer = Answer(question=question, query=query)
    if not is_relevant(nearest(hits, settings), settings.min_relevance):
        # Nothing to ground an answer on: say so, show the nearest passages, and do not ask the model.
        answer.found_relevant = False
        answer.passages = nearest(hits, settings)
        answer.answer = NOT_IN_DOCUMENTS
        yield PassagesFound(answer.passages, relevant=False)
        yield AnswerDelta(NOT_IN_DOCUMENTS)
        yield Finished(answer)
        return
    prompt = pack_prompt(question, query, hits, index, settings, reply_room(settings), history, effort,
                         today or date.today())
    answer.passages = prompt.passages
    answer.estimated_prompt_tokens = prompt.estimated_tokens
    answer.notices.extend(prompt.notices)
    yield PassagesFound(prompt.passages)
    reasoning: list[str] = []
    content: list[str] = []
    for event in chat.stream(prompt.messages, effort):
        if isinstance(event, Delta):
            if event.thinking:
                reasoning.append(event.thinking)
                yield ReasoningDelta(event.thinking)
            if event.content:
                content.append(event.content)
                yield AnswerDelta(event.content)
        elif isinstance(event, Usage):
            answer.prompt_tokens = event.prompt_tokens
            answer.completion_tokens = event.completion_tokens
            answer.done_reason = event.done_reason
    answer.reasoning = "".join(reasoning).strip()
    answer.answer = "".join(content).strip()
    _check_usage(answer, settings)
    scorer = SupportScorer(index.embedder, settings.support)
    answer.sentences = ground_sentences(answer.answer, prompt.passages, scorer, ignore=(NOT_IN_DOCUMENTS,))
    answer.citations = citations_for(answer.sentences, prompt.passages, scorer)
    yield Finished(answer)


def _check_usage(answer: Answer, settings: Settings) -> None:
    """Turn what the server reported about the prompt and the reply into notices: never a silent cut."""
    if answer.prompt_tokens is not None:
        if answer.prompt_tokens >= settings.num_ctx - TRUNCATION_SLACK_TOKENS:
            answer.truncated = True
            answer.notices.append(
                f"The server cut the prompt to its context window ({answer.prompt_tokens:,} of "
                f"ARCHIVIST_NUM_CTX={settings.num_ctx:,} tokens), so some sources were not read. Raise "
                "ARCHIVIST_NUM_CTX, or lower ARCHIVIST_SOURCES."
            )
        elif answer.estimated_prompt_tokens is not None and answer.prompt_tokens > answer.estimated_prompt_tokens:
            logger.warning("prompt took %d tokens, more than the estimate of %d", answer.prompt_tokens,
                           answer.estimated_prompt_tokens)
    if answer.done_reason == INCOMPLETE:
        answer.notices.append(
            "The reply ended early: the LLM server stopped sending before it had finished, so the answer may be "
            "cut short. Try again; if it keeps happening, look at the server's log (out of memory, restarted)."
        )
    elif answer.done_reason == "length":
        what = "before writing any answer" if not answer.answer else "before finishing the answer"
        answer.notices.append(
            f"The model ran out of tokens {what} (ARCHIVIST_NUM_PREDICT={settings.num_predict:,}). "
            "Try a lower reasoning effort, or raise ARCHIVIST_NUM_PREDICT."
        )
    elif not answer.answer:
        answer.notices.append("The model returned an empty answer. Try again, or a lower reasoning effort.")
