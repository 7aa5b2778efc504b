"""Follow-up questions become standalone search queries."""

from __future__ import annotations

from rag.answer.ask import standalone_query
from rag.answer.followup import accept_rewrite, joined_query, needs_context, rewrite_messages
from rag.answer.prompt import NOT_IN_DOCUMENTS, Exchange
from rag.errors import LLMUnavailable
from tests.fakes import ScriptedChat

HISTORY = [Exchange("What was 3M's revenue in 2022?", "3M's revenue was 34.2 billion dollars [1].")]


def test_a_first_question_never_needs_context() -> None:
    assert not needs_context("And in 2023?", [])


def test_pronouns_and_short_questions_lean_on_the_conversation() -> None:
    assert needs_context("And in 2023?", HISTORY)
    assert needs_context("How did it change?", HISTORY)
    assert needs_context("What about their margins?", HISTORY)
    assert not needs_context("What did the Medlar garden report say about frost damage?", HISTORY)


def test_the_rewrite_request_shows_the_conversation_without_reasoning() -> None:
    messages = rewrite_messages("And in 2023?", HISTORY)
    assert messages[0]["role"] == "system" and messages[0]["content"].startswith("Rewrite the user's last question")
    assert [m["role"] for m in messages[1:]] == ["user", "assistant", "user"]
    assert messages[-1]["content"].endswith("And in 2023?")


def test_unusable_rewrites_are_refused() -> None:
    assert accept_rewrite("", "And in 2023?", HISTORY) is None
    assert accept_rewrite(NOT_IN_DOCUMENTS, "And in 2023?", HISTORY) is None
    assert accept_rewrite("x " * 500, "And in 2023?", HISTORY) is None
    assert accept_rewrite('"What was 3M\'s revenue in 2023?"\nextra', "And in 2023?", HISTORY) == (
        "What was 3M's revenue in 2023?"
    )


def test_the_llm_rewrites_a_follow_up() -> None:
    chat = ScriptedChat()
    chat.enqueue("What was 3M's revenue in 2023?", thinking="Replace the reference.")
    assert standalone_query("And in 2023?", HISTORY, chat) == "What was 3M's revenue in 2023?"
    messages, effort = chat.history[0]
    assert effort == "low"
    assert messages[-1]["content"].endswith("And in 2023?")


def test_a_standalone_question_is_searched_as_it_is() -> None:
    chat = ScriptedChat()
    question = "What did the Medlar garden report say about frost damage?"
    assert standalone_query(question, HISTORY, chat) == question
    assert chat.history == []  # no LLM call


def test_without_a_usable_rewrite_the_questions_are_joined() -> None:
    chat = ScriptedChat()
    chat.enqueue("", error=LLMUnavailable("down"))
    assert standalone_query("And in 2023?", HISTORY, chat) == joined_query("And in 2023?", HISTORY)
    assert joined_query("And in 2023?", HISTORY) == "What was 3M's revenue in 2022? And in 2023?"
    assert standalone_query("And in 2023?", HISTORY, None) == joined_query("And in 2023?", HISTORY)
