"""Text for a terminal: what the command line prints of file names and document text is shown, never obeyed.

A file may be named, or a document may contain, `ESC ] 52 ; c ; …` (OSC 52: write the clipboard), `ESC [ 2 J`
(clear the screen), a C1 control (`\\x9b` is CSI on some terminals) or a right-to-left override that makes a
line read differently than it is. Everything the CLI prints for people passes through `clean`, which keeps
line breaks and tabs and shows every other control character as a visible escape. A file name that is not
valid UTF-8 reaches Python as lone surrogates (`\\udcff` for the byte 0xff), which cannot be printed at all:
those are shown as the escape of the byte (`\\xff`).

JSON output escapes the same characters (as `\\uXXXX`), so `--json` piped to a terminal is just as inert.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls but tab and line feed, DEL, C1 controls, and the Unicode format characters that reorder or hide
# text (bidirectional embeddings, overrides and isolates; the line and paragraph separators).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_control(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    # surrogateescape maps an undecodable byte b to U+DC00 + b: show the byte itself.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def clean(text: str) -> str:
    """`text` safe to print on a terminal: control characters and undecodable bytes shown as escapes."""
    return _SURROGATE.sub(_escape_surrogate, _UNSAFE.sub(_escape_control, text))


def clean_line(text: str) -> str:
    """Like `clean`, on one line: line breaks and tabs become spaces (a file name spanning lines is a trick)."""
    return clean(" ".join(text.replace("\t", " ").split("\n")))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def json_text(data: Any) -> str:
    """`data` as indented JSON whose text holds no character a terminal would act on.

    `json.dumps(ensure_ascii=False)` escapes C0 controls but lets C1 controls, bidirectional overrides and
    lone surrogates through (the last would make writing it fail); they are written as `\\uXXXX` here, which
    reads back as the same string."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return _SURROGATE.sub(_json_escape, _UNSAFE.sub(_json_escape, text))
