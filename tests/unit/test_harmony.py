"""The harmony renderer against the reference format (../shared/docs/OLLAMA_GPT_OSS.md's example)."""

from __future__ import annotations

from datetime import date

from rag.llm.harmony import Conversation, SystemPart, Turn, render_for_completion

REFERENCE = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: 2025-08-10\n"
    "\n"
    "Reasoning: low\n"
    "\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
    "<|start|>developer<|message|># Instructions\n"
    "\n"
    "Answer only from the context. If it is not there, say so. Cite as [n].<|end|>"
    "<|start|>user<|message|>Context:\n"
    "[1] Ollama listens on port 11434.\n"
    "\n"
    "Question: Which port does Ollama use?<|end|><|start|>assistant"
)


def test_matches_the_reference_byte_for_byte() -> None:
    conversation = Conversation(
        SystemPart(effort="low", current_date=date(2025, 8, 10)),
        "Answer only from the context. If it is not there, say so. Cite as [n].",
        (Turn("user", "Context:\n[1] Ollama listens on port 11434.\n\nQuestion: Which port does Ollama use?"),),
    )
    assert render_for_completion(conversation) == REFERENCE


def test_earlier_reasoning_is_dropped_once_answered() -> None:
    turns = (Turn("user", "Q1"), Turn("assistant", "thinking", "analysis"), Turn("assistant", "A1", "final"),
             Turn("user", "Q2"))
    trimmed = Conversation(SystemPart(), "Rules.", turns).without_old_reasoning()
    assert [turn.content for turn in trimmed.turns] == ["Q1", "A1", "Q2"]
    text = render_for_completion(trimmed)
    assert "<|start|>assistant<|channel|>final<|message|>A1<|end|><|start|>user<|message|>Q2<|end|>" in text
