"""The answer path with fakes: a scripted model, an in-memory index with deterministic vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer.ask import Answer, AnswerEvent, Finished, PassagesFound, Searching, ask
from rag.answer.prompt import NOT_IN_DOCUMENTS, Exchange
from rag.index.catalog import Catalog
from rag.index.index import FileFacts, Index, NewChunk
from rag.llm.chat import INCOMPLETE
from rag.settings import Settings, load_settings
from tests.fakes import HashingEmbedder, InMemoryVectorStore, ScriptedChat

DOCUMENTS = {
    "/lib/garden.md": ["Quinces ripen in October in the north garden. Medlars need a hard frost before eating."],
    "/lib/ports.md": ["Ollama listens on port 11434 by default. Chroma's server uses port 8000."],
}


@pytest.fixture
def index(tmp_path: Path) -> Index:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    for path, texts in DOCUMENTS.items():
        chunks = [NewChunk(text, page, page) for page, text in enumerate(texts, start=1)]
        index.write_document(FileFacts(path, path, 1, 1), "markdown", len(texts), chunks)
    return index


def settings(**overrides: object) -> Settings:
    return load_settings(min_relevance=0.0, **overrides)


def finish(events: list[AnswerEvent]) -> Answer:
    assert isinstance(events[-1], Finished)
    return events[-1].answer


def test_a_cited_answer_is_checked_sentence_by_sentence(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("Ollama listens on port 11434 [1]. Quinces ripen in October [1]. It is fast.",
                 thinking="Look at the sources.", prompt_tokens=400)
    events = list(ask("Which port does Ollama listen on?", index, chat, settings(sources=2)))
    assert isinstance(events[0], Searching) and isinstance(events[1], PassagesFound)
    answer = finish(events)
    assert answer.passages[0].path == "/lib/ports.md"
    first, second, third = answer.sentences
    assert (first.cited, first.status) == ([1], "supported")
    assert first.support is not None and first.support.quote == "Ollama listens on port 11434 by default."
    text = answer.passages[0].text
    assert text[first.support.quote_start:first.support.quote_end] == first.support.quote
    assert second.cited == [1] and second.status == "unsupported"  # [1] is about ports, not quinces
    assert third.status == "uncited" and third.cited == []
    assert answer.unsupported == [second.text] and answer.uncited == [third.text]
    assert [c.n for c in answer.citations] == [1]
    data = answer.to_json()
    assert data["usage"] == {"prompt_tokens": 400, "estimated_prompt_tokens": answer.estimated_prompt_tokens,
                             "completion_tokens": None, "truncated": False, "done_reason": "stop"}
    assert {"sentences", "unsupported", "uncited", "passages", "citations", "notices"} <= set(data)


def test_an_uncited_sentence_gets_the_best_supporting_quote_as_a_suggestion(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("Medlars need a hard frost.")
    answer = finish(list(ask("When are medlars ready to eat?", index, chat, settings(sources=2))))
    (sentence,) = answer.sentences
    assert sentence.status == "uncited" and sentence.support is not None
    assert sentence.support.quote == "Medlars need a hard frost before eating."
    assert answer.passages[sentence.support.n - 1].path == "/lib/garden.md"
    assert answer.citations == []


def test_nothing_relevant_means_no_llm_call_and_the_nearest_passages(index: Index) -> None:
    chat = ScriptedChat()
    answer = finish(list(ask("Which port does Ollama listen on?", index, chat, load_settings(min_relevance=0.99))))
    assert chat.history == []
    assert answer.answer == NOT_IN_DOCUMENTS and not answer.found_relevant
    assert answer.passages and answer.citations == [] and answer.sentences == []
    assert answer.to_json()["found_relevant"] is False


def test_a_truncated_prompt_is_reported(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("Port 11434 [1].", prompt_tokens=8192)
    answer = finish(list(ask("Which port?", index, chat, settings(num_ctx=8192))))
    assert answer.truncated and answer.to_json()["usage"]["truncated"] is True  # type: ignore[index]
    assert any("cut the prompt" in notice for notice in answer.notices)


def test_running_out_of_tokens_while_thinking_is_explained(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("", thinking="hmm " * 50, done_reason="length")
    answer = finish(list(ask("Which port?", index, chat, settings(num_predict=256))))
    assert answer.answer == "" and answer.sentences == []
    assert answer.notices == ["The model ran out of tokens before writing any answer (ARCHIVIST_NUM_PREDICT=256). "
                              "Try a lower reasoning effort, or raise ARCHIVIST_NUM_PREDICT."]


def test_a_reply_cut_off_before_its_end_says_so(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("Port 11434", done_reason=INCOMPLETE)
    answer = finish(list(ask("Which port?", index, chat, settings())))
    assert answer.answer == "Port 11434" and answer.done_reason == INCOMPLETE
    assert any(notice.startswith("The reply ended early") for notice in answer.notices)


def test_a_follow_up_is_searched_standalone_and_answered_with_history(index: Index) -> None:
    chat = ScriptedChat()
    chat.enqueue("Which port does Chroma's server use?")  # the rewrite
    chat.enqueue("Chroma's server uses port 8000 [1].")
    history = [Exchange("Which port does Ollama listen on?", "Ollama listens on port 11434 [1].")]
    events = list(ask("And Chroma?", index, chat, settings(sources=2), history=history))
    assert events[0] == Searching("Which port does Chroma's server use?")
    answer = finish(events)
    assert answer.query == "Which port does Chroma's server use?"
    messages, effort = chat.history[1]
    assert effort == "medium"
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "Ollama listens on port 11434."
    assert messages[3]["content"].endswith("Question: And Chroma?")
    assert answer.sentences[0].status == "supported"


def test_the_answer_path_uses_the_settings_retrieval_and_support_sections(tmp_path: Path) -> None:
    index = Index(Catalog(tmp_path / "catalog.sqlite3"), InMemoryVectorStore(), HashingEmbedder(dimension=256))
    ports = ["Ollama listens on port 11434 by default.", "Ollama's port 11434 can be changed with OLLAMA_HOST."]
    index.write_document(FileFacts("/lib/ports.md", "p", 1, 1), "markdown", 2,
                         [NewChunk(text, page, page) for page, text in enumerate(ports, start=1)])
    index.write_document(FileFacts("/lib/garden.md", "g", 1, 1), "markdown", 1,
                         [NewChunk("Quinces ripen in October.", 1, 1)])

    def answer(**overrides: object) -> Answer:
        chat = ScriptedChat()
        chat.enqueue("Ollama listens on port 11434 [1].")
        return finish(list(ask("Which port does Ollama listen on?", index, chat,
                               settings(context={"candidates": 2}, **overrides))))

    default = answer()
    assert [hit.path for hit in default.passages] == ["/lib/ports.md"] * 2
    assert default.sentences[0].status == "supported"
    tuned = answer(retrieval={"per_document": 1}, support={"threshold": 0.999})
    assert [hit.path for hit in tuned.passages] == ["/lib/ports.md", "/lib/garden.md"]
    assert tuned.sentences[0].status == "unsupported"
