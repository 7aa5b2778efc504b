"""Answering a question: retrieve, build the grounded prompt, stream the model, resolve citations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from rag.citations import Citation, resolve_citations
from rag.index import Index
from rag.llm import ChatModel, Delta, Usage
from rag.prompt import NOT_IN_DOCUMENTS, build_prompt
from rag.retrieve import Hit, search
from rag.settings import Effort, Settings


@dataclass
class Answer:
    question: str
    answer: str = ""
    reasoning: str = ""
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answer": self.answer,
            "reasoning": self.reasoning,
            "citations": [citation.to_json() for citation in self.citations],
            "passages": [hit.to_json() for hit in self.passages],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "done_reason": self.done_reason,
            },
        }


@dataclass(frozen=True)
class PassagesFound:
    passages: list[Hit]


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    answer: Answer


AnswerEvent = PassagesFound | ReasoningDelta | AnswerDelta | Finished


def ask(
    question: str, index: Index, chat: ChatModel, settings: Settings, effort: Effort | None = None
) -> Iterator[AnswerEvent]:
    """Stream the answer. Passages come first, so a face can still show them if the LLM then fails."""
    hits = search(index, question, settings.sources)
    prompt = build_prompt(question, hits, settings.num_ctx, reserve_tokens=settings.num_predict)
    yield PassagesFound(prompt.passages)
    answer = Answer(question=question, passages=prompt.passages)
    if not prompt.passages:
        # Nothing to ground an answer on: say so without asking the model to improvise.
        answer.answer = NOT_IN_DOCUMENTS
        yield AnswerDelta(NOT_IN_DOCUMENTS)
        yield Finished(answer)
        return
    reasoning: list[str] = []
    content: list[str] = []
    for event in chat.stream(prompt.messages, effort or settings.effort):
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
    answer.citations = resolve_citations(answer.answer, prompt.passages)
    yield Finished(answer)
