"""File names that are not valid UTF-8: stored losslessly in the catalog, shown harmlessly.

On Linux a file name is bytes. Python decodes it with `surrogateescape`: a byte that is not UTF-8 (b"\\xff")
becomes a lone surrogate (U+DCFF), which no UTF-8 text (SQLite, JSON, a terminal) may hold. The catalog keeps
such names through a reversible, injective mapping onto valid text:

    U+DC80..U+DCFF (an undecodable byte)        ->  U+F780..U+F7FF (one private-use character)
    any other lone surrogate U+D800..U+DFFF      ->  U+F701 + the plane-15 character U+F0000 + offset
    a real character U+F700..U+F7FF              ->  U+F700 + that character (escaped)

Names without those characters (nearly all) are stored unchanged, and because the mapping works character by
character, the stored form of a folder is a prefix of the stored form of every file under it. Reading a row
decodes it back, so the file can be opened again by the same name.
"""

from __future__ import annotations

import re

_ESCAPE = "\uf700"  # a real character of the reserved range follows
_OTHER_SURROGATE = "\uf701"  # a surrogate outside the surrogateescape range follows, as U+F0000 + offset
_RESERVED = re.compile("[\ud800-\udfff\uf700-\uf7ff]")
_STORED = re.compile("\uf700[\uf700-\uf7ff]|\uf701[\U000f0000-\U000f07ff]|[\uf780-\uf7ff]")


def _store_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return chr(0xF780 + code - 0xDC80)
    if 0xD800 <= code <= 0xDFFF:
        return _OTHER_SURROGATE + chr(0xF0000 + code - 0xD800)
    return _ESCAPE + char


def _load_one(match: re.Match[str]) -> str:
    text = match.group()
    if text[0] == _ESCAPE:
        return text[1]
    if text[0] == _OTHER_SURROGATE:
        return chr(0xD800 + ord(text[1]) - 0xF0000)
    return chr(0xDC80 + ord(text) - 0xF780)


def store_path(path: str) -> str:
    """The catalog's form of a path: valid UTF-8 text, from which `load_path` gives the path back."""
    return _RESERVED.sub(_store_one, path) if _RESERVED.search(path) else path


def load_path(stored: str) -> str:
    """The path a catalog row names (inverse of `store_path`)."""
    return _STORED.sub(_load_one, stored) if max(stored, default="\0") >= "\uf700" else stored


_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _show_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the byte that was not UTF-8, as Python would write it
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def display_path(path: str) -> str:
    """A path as a person should see it: valid text, with undecodable bytes and control characters written
    as escapes (b"bad\\xff.txt" shows as `bad\\xff.txt`), so it can be printed, put in JSON or on a page without
    an encoding error and without a terminal acting on an escape sequence."""
    return _UNSHOWABLE.sub(_show_one, path)


def display_text(text: str) -> str:
    """Like `display_path`, for a message that may quote a file name (an error reason): valid text only."""
    return _UNSHOWABLE.sub(lambda m: _show_one(m) if m.group() not in "\n\t" else m.group(), text)
