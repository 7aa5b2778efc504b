"""What `ask` streams to a face, and the finished `Answer`: kept apart from ask.py so that the research loop
(rag/answer/research.py) streams the same events without importing `ask`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rag.answer.grounding import AnswerSentence
from rag.records import Citation, Hit


@dataclass(frozen=True)
class Calculated:
    """A calculation the model ran: its code, what it printed, and for each number in the code the labels of
    the passages that contain it (so a face can link an operand to where it came from)."""

    code: str
    output: str
    operands: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """One tool call of research mode, as a face shows it ("Searched: …, 8 passages")."""

    number: int  # 1-based, in the order the model called them
    tool: str  # the tool's own name: search, open, find, python
    arguments: dict[str, Any]
    summary: str  # one line for the person
    seconds: float
    failed: bool = False
    labels: tuple[int, ...] = ()  # the passages (by label) this step showed the model
    calculation: Calculated | None = None
    result: str = ""  # the start of what the model was sent back (for --json and debugging)

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number, "tool": self.tool, "arguments": self.arguments, "summary": self.summary,
            "seconds": round(self.seconds, 3), "failed": self.failed, "labels": list(self.labels),
            "calculation": self.calculation.to_json() if self.calculation else None, "result": self.result,
        }


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
    mode: str = "quick"  # how it was answered: quick (one reply) or research (with tools)
    steps: list[Step] = field(default_factory=list)  # research mode's tool calls, in order

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
            "mode": self.mode,
            "steps": [step.to_json() for step in self.steps],
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
class AnswerRetracted:
    """The answer text streamed so far was a preamble to tool calls, not the answer: a face clears it."""

    text: str


@dataclass(frozen=True)
class StepTaken:
    """Research mode ran one tool call."""

    step: Step


@dataclass(frozen=True)
class Finished:
    answer: Answer


AnswerEvent = Searching | PassagesFound | ReasoningDelta | AnswerDelta | AnswerRetracted | StepTaken | Finished
