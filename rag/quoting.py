"""Documents are data: text from a file, put in front of the model, is made inert and quoted.

One labelled block per passage — `[7] report.pdf — p. 3 (Heading)`, then the text between `<source>` tags —
in the prompt (rag/answer/prompt.py) and in research mode's tool results (rag/tools/library.py) alike, with
harmony's control tokens and our own quote tags made inert, so a document can neither start a new message
nor step outside its block.
"""

from __future__ import annotations

import re
from pathlib import PurePath

from rag.records import Hit

# Harmony's control tokens (and the generic end-of-text): inside a document they could end the user turn and
# forge another message. Matched loosely (spaces, case) since a tokenizer may still read near-misses as them.
_CONTROL_TOKEN = re.compile(
    r"<\|\s*(start|end|message|channel|return|call|constrain|endoftext|endofprompt)\s*\|>", re.IGNORECASE
)
# Our own quoting: a document must not be able to close its <source> block early and write outside it.
_QUOTE_TAG = re.compile(r"</?\s*source\b[^>]*>", re.IGNORECASE)


def neutralise(text: str) -> str:
    """Make harmony control tokens and our source quotes inert, so a document cannot start a new message
    or step outside its quoted block."""
    text = _CONTROL_TOKEN.sub(lambda match: f"<{match.group(1)}>", text)
    return _QUOTE_TAG.sub(lambda match: match.group(0).replace("<", "‹").replace(">", "›"), text)


def source_label(hit: Hit) -> str:
    label = f"{PurePath(hit.path).name} — {hit.pages_label}"
    if hit.headings:
        label += f" ({' > '.join(hit.headings)})"
    return label


def source_block(number: int, hit: Hit) -> str:
    return f"[{number}] {neutralise(source_label(hit))}\n<source>\n{neutralise(hit.text.strip())}\n</source>"
