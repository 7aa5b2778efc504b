"""What the command line prints of file names and document text cannot drive the terminal."""

from __future__ import annotations

import json

from ui.terminal import clean, clean_line, json_text

OSC52 = "\x1b]52;c;aGVsbG8=\x07"  # "write 'hello' to the clipboard"


def test_escape_sequences_are_shown_not_obeyed() -> None:
    shown = clean(f"report{OSC52}.pdf \x1b[2J\x9b31m")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown == "report\\x1b]52;c;aGVsbG8=\\x07.pdf \\x1b[2J\\x9b31m"


def test_line_breaks_and_tabs_stay_in_text_but_not_in_one_line() -> None:
    assert clean("a\tb\nc") == "a\tb\nc"
    assert clean_line("a\tb\nc") == "a b c"


def test_bidirectional_overrides_are_visible() -> None:
    assert clean("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"


def test_a_file_name_that_is_not_utf8_shows_its_bytes() -> None:
    name = b"bad\xff.txt".decode("utf-8", "surrogateescape")
    shown = clean(name)
    assert shown == "bad\\xff.txt"
    shown.encode("utf-8")  # printable at all


def test_json_escapes_the_same_and_reads_back_the_same() -> None:
    data = {"path": f"x{OSC52}\u202e" + b"\xff".decode("utf-8", "surrogateescape"), "n": 1}
    text = json_text(data)
    assert "\x1b" not in text and "\u202e" not in text
    text.encode("utf-8")
    assert json.loads(text) == data
