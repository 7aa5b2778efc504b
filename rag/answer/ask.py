"""Answering a question: make the query standalone, retrieve, decide whether anything is relevant, build the
grounded prompt, stream the model, then check the answer sentence by sentence.

`ask` is a generator of events, so a face can show the passages before the model starts and the answer as it
streams; the last event, `Finished`, carries the whole `Answer`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace
from datetime import date
from typing import Literal

# Re-exported: the faces take the answer and its events from here.
from rag.answer.events import Answer as Answer
from rag.answer.events import AnswerDelta as AnswerDelta
from rag.answer.events import AnswerEvent as AnswerEvent
from rag.answer.events import AnswerRetracted as AnswerRetracted
from rag.answer.events import Finished as Finished
from rag.answer.events import PassagesFound as PassagesFound
from rag.answer.events import ReasoningDelta as ReasoningDelta
from rag.answer.events import Searching as Searching
from rag.answer.events import StepTaken as StepTaken
from rag.answer.followup import accept_rewrite, joined_query, needs_context, rewrite_messages
from rag.answer.grounding import citations_for, ground_sentences
from rag.answer.packing import gather, nearest, pack_prompt
from rag.answer.prompt import NOT_IN_DOCUMENTS, Exchange, Prompt
from rag.answer.research import RESEARCH_RULES, RESULT_ROOM_TOKENS, Reply, relay, research, research_messages
from rag.answer.support import SupportScorer
from rag.errors import ConfigError, LLMError, ToolsUnsupported
from rag.index.index import Index
from rag.llm.chat import INCOMPLETE, ChatModel, Message
from rag.llm.tokens import count_tokens, estimate_tokens, exact_for
from rag.records import Effort, Filters, Hit
from rag.settings import Settings
from rag.tools.calculator import Calculator
from rag.tools.labels import Ledger
from rag.tools.library import Toolbox

logger = logging.getLogger(__name__)

Mode = Literal["quick", "research"]

# Ollama cuts a prompt longer than num_ctx down to exactly num_ctx tokens (logging "truncating input
# prompt"); a prompt_eval_count this close to num_ctx means it happened. Our packing keeps real prompts far
# below: num_ctx minus the reply's room minus a margin, by an estimate that errs high.
TRUNCATION_SLACK_TOKENS = 16




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
    mode: Mode | None = None,
    calculator: Calculator | None = None,
) -> Iterator[AnswerEvent]:
    """Stream the answer. Passages come first, so a face can still show them if the LLM then fails.

    `mode` (default `settings.research.mode`): quick asks the model once with the packed passages; research
    lets it search, open, find and calculate first (rag/answer/research.py), when the model takes tools — else
    it answers in one shot and says so. `calculator` runs research mode's calculations (None: the sandbox)."""
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
    # --steps 0 (research.max_steps = 0) is quick mode: no tools to offer.
    researching = settings.research.max_steps > 0 and _research_possible(mode or settings.research.mode, chat,
                                                                          answer)

    def packed(research_mode: bool) -> Prompt:
        # Research mode starts with less, leaving the window's room for what its tools bring.
        share = settings.research.context_share if research_mode else settings.context.share
        packing = settings.model_copy(update={"context": replace(settings.context, share=share)})
        return pack_prompt(question, query, hits, index, packing, reply_room(settings), history, effort,
                           today or date.today())

    prompt = packed(researching)
    answer.passages = prompt.passages
    answer.estimated_prompt_tokens = prompt.estimated_tokens
    answer.notices.extend(prompt.notices)
    yield PassagesFound(prompt.passages)
    passages: Sequence[Hit] = prompt.passages
    if researching:
        passages = yield from _researched(prompt, lambda: packed(False), index, chat, settings, effort, answer,
                                          calculator)
    else:
        yield from _answered_once(prompt.messages, chat, effort, answer)
    answer.passages = list(passages)
    _check_usage(answer, settings)
    scorer = SupportScorer(index.embedder, settings.support)
    answer.sentences = ground_sentences(answer.answer, passages, scorer, ignore=(NOT_IN_DOCUMENTS,))
    answer.citations = citations_for(answer.sentences, passages, scorer)
    yield Finished(answer)


def _research_possible(mode: Mode, chat: ChatModel, answer: Answer) -> bool:
    """Whether to research: asked for, and the model takes tools (else a notice says why it did not)."""
    if mode != "research":
        return False
    if not chat.supports_tools():
        answer.notices.append(
            f"{chat.model} does not take tools, so it answered in one shot from the passages found (research "
            "mode needs a model with tool support, such as gpt-oss)."
        )
        return False
    return True


def _answered_once(
    messages: Sequence[Message], chat: ChatModel, effort: Effort, answer: Answer
) -> Iterator[AnswerEvent]:
    """Quick mode: one reply, streamed."""
    reply = Reply()
    yield from relay(chat.stream(messages, effort), reply)
    if reply.usage is not None:
        answer.prompt_tokens = reply.usage.prompt_tokens
        answer.completion_tokens = reply.usage.completion_tokens
        answer.done_reason = reply.usage.done_reason
    answer.reasoning = reply.thinking.strip()
    answer.answer = reply.content.strip()


def _researched(
    prompt: Prompt, quick_prompt: Callable[[], Prompt], index: Index, chat: ChatModel, settings: Settings,
    effort: Effort, answer: Answer, calculator: Calculator | None,
) -> Generator[AnswerEvent, None, Sequence[Hit]]:
    """Research mode; returns every passage the model saw, by label. A server that refuses tools gets the
    one-shot answer instead (from `quick_prompt`, packed as quick mode packs), with a notice."""
    ledger = Ledger(prompt.passages)
    own_calculator = calculator is None
    if calculator is None:
        from rag.factory import make_calculator

        try:
            calculator = make_calculator(settings)
        except ConfigError as missing:  # the sandbox's packages are not installed: research without it
            logger.warning("research without calculations: %s", missing)
            answer.notices.append(f"Calculations are off: {missing}")
    toolbox = Toolbox(index, settings, ledger, calculator)
    messages = research_messages(prompt.conversation)
    answer.mode = "research"
    # The research rules and the tools' definitions (which the server writes into the prompt) take room too.
    count = count_tokens if exact_for(settings.model) else estimate_tokens
    overhead = count(RESEARCH_RULES) + sum(count(json.dumps([spec.name, spec.description, spec.parameters]))
                                           for spec in toolbox.specs)
    try:
        if prompt.estimated_tokens + overhead + RESULT_ROOM_TOKENS > prompt.budget_tokens:
            raise _NoRoom()
        yield from research(messages, chat, toolbox, lambda: ledger.passages, settings.research, effort, answer,
                            prompt.estimated_tokens + overhead, prompt.budget_tokens)
    except (ToolsUnsupported, _NoRoom) as reason:
        logger.info("research mode not possible: %s", reason)
        answer.mode = "quick"
        if isinstance(reason, _NoRoom):
            answer.notices.append(
                f"The context window (ARCHIVIST_NUM_CTX={settings.num_ctx:,}) leaves no room for what research "
                "tools would bring, so the model answered in one shot from the passages found. Raise "
                "ARCHIVIST_NUM_CTX for research mode."
            )
        else:
            answer.notices.append(
                f"The server refused tools for {chat.model}, so it answered in one shot from the passages found "
                f"({reason})."
            )
        quick = quick_prompt()
        answer.estimated_prompt_tokens = quick.estimated_tokens
        yield PassagesFound(quick.passages)
        yield from _answered_once(quick.messages, chat, effort, answer)
        return quick.passages
    finally:
        if own_calculator and calculator is not None:
            calculator.close()
    return ledger.passages


class _NoRoom(Exception):
    """The context window cannot hold the research prompt and one tool result."""


def _check_usage(answer: Answer, settings: Settings) -> None:
    """Turn what the server reported about the prompt and the reply into notices: never a silent cut."""
    if answer.prompt_tokens is not None:
        if answer.prompt_tokens >= settings.num_ctx - TRUNCATION_SLACK_TOKENS:
            answer.truncated = True
            answer.notices.append(
                f"The server cut the prompt to its context window ({answer.prompt_tokens:,} of "
                f"ARCHIVIST_NUM_CTX={settings.num_ctx:,} tokens), so some sources were not read. Raise "
                "ARCHIVIST_NUM_CTX, or lower ARCHIVIST_CONTEXT__SHARE."
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
