"""The tools as the model is told about them: names, descriptions and JSON-Schema parameters.

Shaped like gpt-oss's reference browser tool (`browser.search(query, topn)`, `browser.open(id, cursor, loc,
num_lines)`, `browser.find(pattern, cursor)`), so the habits the model was trained with work: its trained names
go to servers that pass them through (`trained_name`), plain names elsewhere. The calculator is a plain function
(`run_python`), for the reason given at PYTHON.
"""

from __future__ import annotations

from rag.llm.chat import ToolSpec

SEARCH = "search"
OPEN = "open"
FIND = "find"
# Not gpt-oss's trained `python`: through Ollama the model writes raw code (not JSON) to its built-in python
# tool, which Ollama then cannot parse, and the built-in's own text promises a stateful notebook with files that
# the sandbox does not have. A plain function name gets JSON arguments (odysseus-dev/odysseus #5877).
PYTHON = "run_python"

KINDS = ("pdf", "text", "markdown", "html", "docx")

CITE_HINT = "Cite a passage as [n] (its label), or lines of an opened page as 【n†L3-L7】."


def search_spec(result_passages: int, most: int) -> ToolSpec:
    return ToolSpec(
        name=SEARCH,
        trained_name="browser.search",
        description=(
            "Search the user's library of documents. Returns passages, each starting on its own line with its "
            "label [n], file name and page, then its text between <source> tags. Search again with other words "
            "(names, figures, synonyms) when the passages do not answer. " + CITE_HINT
        ),
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for: keywords, names, figures, a question."},
                "topn": {
                    "type": "integer",
                    "description": f"How many passages to return (default {result_passages}, at most {most}).",
                },
                "folder": {
                    "type": "string",
                    "description": "Only documents in this folder (its name, e.g. 'reports' or '2022/reports').",
                },
                "type": {"type": "string", "enum": list(KINDS), "description": "Only documents of this type."},
                "name": {
                    "type": "string",
                    "description": "Only files whose name matches: a glob like '*2022*.pdf', or part of the name.",
                },
            },
            "required": ["query"],
        },
    )


def open_spec(page_lines: int) -> ToolSpec:
    return ToolSpec(
        name=OPEN,
        trained_name="browser.open",
        description=(
            "Open a page of a document you have seen, with numbered lines, to read around a passage or read on. "
            f"Shows {page_lines} lines at a time; the header says which lines and how many the page has. "
            "open(id=7) opens the page of passage [7]; open(id=12, loc=61) reads on from line 61 of the "
            "opened page [12]; open(id=12, page=42) turns to page 42 of its document. " + CITE_HINT
        ),
        parameters={
            "type": "object",
            "properties": {
                "id": {
                    "type": ["integer", "string"],
                    "description": "The label [n] of a passage or page you have seen, or the name of a file you "
                    "have seen a passage of.",
                },
                "cursor": {
                    "type": "integer",
                    "description": "The label of an opened page to move in (when no id is given; default: the "
                    "page opened last).",
                },
                "loc": {"type": "integer", "description": "The line to start at (default: the passage's line, or 1)."},
                "num_lines": {"type": "integer", "description": f"How many lines to show (default {page_lines})."},
                "page": {"type": "integer", "description": "Which page of the document (default: the passage's)."},
            },
        },
    )


def find_spec() -> ToolSpec:
    return ToolSpec(
        name=FIND,
        trained_name="browser.find",
        description=(
            "Find a word or phrase in a whole document (every page), ignoring case. Returns the matching lines "
            "with their line numbers, under the label of their page. " + CITE_HINT
        ),
        parameters={
            "type": "object",
            "properties": {
                "pattern": {"type": "string", "description": "The text to find, e.g. 'net income'."},
                "cursor": {
                    "type": "integer",
                    "description": "The label of a passage or page of the document to look in (default: the page "
                    "opened last).",
                },
            },
            "required": ["pattern"],
        },
    )


def python_spec() -> ToolSpec:
    return ToolSpec(
        name=PYTHON,
        trained_name=None,
        description=(
            "Run Python to calculate: for arithmetic over figures from the passages (growth rates, ratios, sums). "
            "Each run starts from nothing; there are no files and no network. Only what the code prints comes "
            "back, so print() the results."
        ),
        parameters={
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Python statements whose printed output is returned, e.g. "
                    "'print((4350 - 3975) / 3975)'.",
                },
            },
            "required": ["code"],
        },
    )
