"""gpt-oss's harmony format as plain text: a small model of the conversation and a renderer whose output
matches the reference renderer (openai/harmony) byte for byte for what Archivist sends.

The reference package renders to tokens and needs a vocabulary file from the internet; the format itself is
text, so rendering it here keeps everything offline. Ollama's chat API renders harmony itself; this text is
for golden tests, for servers driven raw (`/api/generate` with `raw: true`), and for counting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from rag.records import Effort

Channel = Literal["analysis", "commentary", "final"]

MODEL_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
KNOWLEDGE_CUTOFF = "2024-06"
VALID_CHANNELS = "# Valid channels: analysis, commentary, final. Channel must be included for every message."


@dataclass(frozen=True)
class SystemPart:
    """The system message: identity, dates, reasoning effort, channels."""

    effort: Effort = "medium"
    current_date: date | None = None
    knowledge_cutoff: str = KNOWLEDGE_CUTOFF
    identity: str = MODEL_IDENTITY

    def render(self) -> str:
        lines = [self.identity, f"Knowledge cutoff: {self.knowledge_cutoff}"]
        if self.current_date is not None:
            lines.append(f"Current date: {self.current_date.isoformat()}")
        return "\n".join(lines) + f"\n\nReasoning: {self.effort}\n\n{VALID_CHANNELS}"


@dataclass(frozen=True)
class Turn:
    """A user message, or an assistant message on a channel."""

    role: Literal["user", "assistant"]
    content: str
    channel: Channel | None = None  # assistant only


@dataclass(frozen=True)
class Conversation:
    system: SystemPart
    instructions: str  # the developer message's "# Instructions"
    turns: Sequence[Turn] = field(default_factory=tuple)

    def without_old_reasoning(self) -> Conversation:
        """Harmony drops earlier `analysis` messages once a turn has ended with a `final` answer."""
        last_final = max((i for i, turn in enumerate(self.turns) if turn.channel == "final"), default=-1)
        kept = [turn for i, turn in enumerate(self.turns) if not (turn.channel == "analysis" and i < last_final)]
        return Conversation(self.system, self.instructions, tuple(kept))


def _message(header: str, content: str) -> str:
    return f"<|start|>{header}<|message|>{content}<|end|>"


def render_for_completion(conversation: Conversation) -> str:
    """The whole prompt, ending where the assistant's reply begins (no trailing newline)."""
    parts = [
        _message("system", conversation.system.render()),
        _message("developer", f"# Instructions\n\n{conversation.instructions}"),
    ]
    for turn in conversation.turns:
        if turn.role == "user":
            parts.append(_message("user", turn.content))
        else:
            parts.append(_message(f"assistant<|channel|>{turn.channel or 'final'}", turn.content))
    return "".join(parts) + "<|start|>assistant"


def chat_messages(conversation: Conversation) -> list[dict[str, str]]:
    """The conversation as chat-API messages, for Ollama's /api/chat and OpenAI-compatible servers.

    Ollama renders harmony itself: it joins every `system` message into the developer part's
    `# Instructions` and silently drops `developer` messages, so the instructions travel as `system`. The
    system part (effort, date) is the server's to write: the effort goes as `think`/`reasoning_effort`.
    Earlier reasoning is not sent (harmony drops it once a turn is answered)."""
    messages = [{"role": "system", "content": conversation.instructions}]
    for turn in conversation.without_old_reasoning().turns:
        if turn.role == "assistant" and turn.channel != "final":
            continue
        messages.append({"role": turn.role, "content": turn.content})
    return messages
