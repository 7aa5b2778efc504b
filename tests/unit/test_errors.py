"""The error tree drawn in rag/errors.py's docstring is the real one, and every error class lives there."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import rag.errors
from rag.errors import ArchivistError

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("rag", "ingest", "ui", "evaluation")  # every package of the product that exists


def drawn_tree(docstring: str) -> dict[str, str | None]:
    """{class name: its parent's name} as the docstring draws it (the root's parent is None)."""
    tree: dict[str, str | None] = {}
    path: list[str] = []  # the names on the way down to the current line
    for line in docstring.splitlines():
        if line.strip() == "ArchivistError":
            tree["ArchivistError"], path = None, ["ArchivistError"]
            continue
        match = re.match(r"^    ((?:[│ ]   )*)[├└]── (\w+)", line)
        if match is None or not path:
            continue
        depth = len(match.group(1)) // 4 + 1
        del path[depth:]
        tree[match.group(2)] = path[-1]
        path.append(match.group(2))
    return tree


def real_tree() -> dict[str, str | None]:
    """{class name: the name of its ArchivistError parent} for every subclass of ArchivistError there is."""
    tree: dict[str, str | None] = {"ArchivistError": None}
    waiting: list[type[ArchivistError]] = [ArchivistError]
    while waiting:
        parent = waiting.pop()
        for child in parent.__subclasses__():
            tree[child.__name__] = parent.__name__
            waiting.append(child)
    return tree


def import_everything() -> None:
    """Import every module of the product, so an error class defined anywhere is among the subclasses."""
    for name in PACKAGES:
        if not (REPO / name / "__init__.py").exists():
            continue
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


def test_the_drawing_shows_every_error_class_under_its_real_parent() -> None:
    import_everything()
    assert drawn_tree(rag.errors.__doc__ or "") == real_tree()


def test_every_error_class_is_defined_in_rag_errors() -> None:
    import_everything()
    elsewhere = []
    waiting: list[type[ArchivistError]] = [ArchivistError]
    while waiting:
        for child in waiting.pop().__subclasses__():
            if child.__module__ != "rag.errors":
                elsewhere.append(f"{child.__module__}.{child.__name__}")
            waiting.append(child)
    assert elsewhere == []


def test_the_drawing_is_read_as_drawn() -> None:
    drawing = """
    ArchivistError
    ├── A                 words
    │   ├── B
    │   │   └── C         more words
    │   └── D
    └── E
        └── F
    """
    assert drawn_tree(drawing) == {"ArchivistError": None, "A": "ArchivistError", "B": "A", "C": "B", "D": "A",
                                   "E": "ArchivistError", "F": "E"}


ASSERTS_PENDING: set[str] = set()  # files with an assert still to replace (none now)


def test_no_assert_guards_the_product() -> None:
    """Checks that must hold raise an error from the tree: `python -O` strips asserts, and an AssertionError
    tells the person nothing. Narrowing for the type checker uses a typed construct instead."""
    found = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for package in ("rag", "ingest", "ui", "evaluation")
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in ASSERTS_PENDING
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
        or (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", None) == "AssertionError")
    ]
    assert found == []
