"""gpt-oss's token counts from quicktok's o200k_harmony, checked where they can be without tiktoken's file:
known o200k ids, harmony's control tokens, round trips, and the fallback when quicktok is missing."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from rag.llm import tokens
from rag.llm.tokens import count_rendered, count_tokens, encoding, estimate_tokens, exact_for

SAMPLES = [
    "The quick brown fox jumps over the lazy dog.",
    "Revenue was $1,234,567.89 in FY2023, up 12.5% (see Note 7).",
    "¿Cuánta memoria necesita el modelo gpt-oss-120b? De 60 GB a 80 GB.",
    "Überprüfung der Größe: 北京市 2024年",
    "def f(x):\n    return {'a': [1, 2, 3]}\n\n\n",
]


def test_the_encoding_is_o200k() -> None:
    found = encoding()
    assert found is not None
    # o200k_base ids shared by o200k_harmony: "Hello" 13225, " world" 2375, "!" 0; digits go three to a token.
    assert found.encode_ordinary("Hello world!") == [13225, 2375, 0]
    assert len(found.encode_ordinary("1234567")) == 3


def test_harmony_control_tokens_are_one_token_each_in_a_rendered_prompt() -> None:
    found = encoding()
    assert found is not None
    assert found.encode("<|start|>user<|message|>hi<|end|>", allowed_special="all") == [200006, 1428, 200008,
                                                                                        3686, 200007]
    assert count_rendered("<|start|>user<|message|>hi<|end|>") == 5
    # In document text they are plain characters (a prompt neutralises them anyway): several tokens each.
    assert count_tokens("<|start|>") > 1


@pytest.mark.parametrize("text", SAMPLES)
def test_counts_are_deterministic_round_trip_and_below_the_safe_estimate(text: str) -> None:
    found = encoding()
    assert found is not None
    ids = found.encode_ordinary(text)
    assert found.decode(ids) == text  # type: ignore[attr-defined]
    assert count_tokens(text) == count_tokens(text) == len(ids)
    assert 0 < count_tokens(text) <= estimate_tokens(text)


def test_only_gpt_oss_is_counted_exactly() -> None:
    assert exact_for("gpt-oss:20b") and exact_for("openai/gpt-oss-120b")
    assert not exact_for("smollm2:135m")


def test_without_quicktok_the_safe_estimate_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_quicktok(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "quicktok":
            raise ImportError("No module named 'quicktok'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_quicktok)
    monkeypatch.setattr(tokens, "_LOADED", False)
    monkeypatch.setattr(tokens, "_ENCODING", None)
    text = SAMPLES[1]
    assert encoding() is None and not tokens.exact() and not exact_for("gpt-oss:20b")
    assert count_tokens(text) == estimate_tokens(text) == count_rendered(text)
