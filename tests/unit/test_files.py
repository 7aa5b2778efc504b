"""Only files inside the watched folders are opened: traversal, outside paths, escaping links, lookalikes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ArchivistError, OutsideLibrary, UnreadableFile
from ui.files import Download, download, mime_type, resolve_inside


@pytest.fixture
def library(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "reports").mkdir(parents=True)
    (docs / "reports" / "2023.pdf").write_bytes(b"%PDF-1.4 report")
    (docs / "notes.md").write_text("# Notes\n", encoding="utf-8")
    private = tmp_path / "docs-private"
    private.mkdir()
    (private / "secret.txt").write_text("secret", encoding="utf-8")
    return docs


def test_a_file_inside_a_root_resolves_to_its_real_path(library: Path) -> None:
    assert resolve_inside(library / "reports" / "2023.pdf", [library]) == (library / "reports" / "2023.pdf").resolve()
    assert resolve_inside(str(library / "reports" / ".." / "notes.md"), [library]) == (library / "notes.md").resolve()
    assert resolve_inside(library, [library]) == library.resolve()  # the root itself


def test_the_second_root_counts_too(library: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.txt").write_text("a", encoding="utf-8")
    assert resolve_inside(other / "a.txt", [library, other]) == (other / "a.txt").resolve()


def test_dot_dot_out_of_the_root_is_refused(library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutsideLibrary, match="not inside the folders Archivist watches"):
        resolve_inside(library / ".." / "docs-private" / "secret.txt", [library])
    monkeypatch.chdir(library / "reports")
    with pytest.raises(OutsideLibrary):
        resolve_inside("../../../../../../../../etc/passwd", [library])


def test_an_absolute_path_outside_is_refused(library: Path) -> None:
    with pytest.raises(OutsideLibrary) as caught:
        resolve_inside("/etc/passwd", [library])
    assert str(caught.value) == "/etc/passwd is not inside the folders Archivist watches, so it is not shown."
    assert isinstance(caught.value, ArchivistError)


def test_a_sibling_with_the_same_prefix_is_refused(library: Path, tmp_path: Path) -> None:
    with pytest.raises(OutsideLibrary):
        resolve_inside(tmp_path / "docs-private" / "secret.txt", [library])


def test_a_symlink_escaping_the_root_is_refused(library: Path, tmp_path: Path) -> None:
    (library / "escape.txt").symlink_to(tmp_path / "docs-private" / "secret.txt")
    (library / "escape-dir").symlink_to(tmp_path / "docs-private", target_is_directory=True)
    with pytest.raises(OutsideLibrary):
        resolve_inside(library / "escape.txt", [library])
    with pytest.raises(OutsideLibrary):
        resolve_inside(library / "escape-dir" / "secret.txt", [library])


def test_a_symlink_staying_inside_and_a_symlinked_root_are_fine(library: Path, tmp_path: Path) -> None:
    (library / "latest.pdf").symlink_to(library / "reports" / "2023.pdf")
    assert resolve_inside(library / "latest.pdf", [library]) == (library / "reports" / "2023.pdf").resolve()
    alias = tmp_path / "alias"
    alias.symlink_to(library, target_is_directory=True)
    assert resolve_inside(library / "notes.md", [alias]) == (library / "notes.md").resolve()
    assert resolve_inside(alias / "notes.md", [library]) == (library / "notes.md").resolve()


def test_missing_files_loops_and_no_roots_are_refused(library: Path) -> None:
    with pytest.raises(OutsideLibrary, match="does not exist"):
        resolve_inside(library / "missing.pdf", [library])
    (library / "loop").symlink_to(library / "loop")
    with pytest.raises(OutsideLibrary, match="does not exist"):
        resolve_inside(library / "loop", [library])
    with pytest.raises(OutsideLibrary):
        resolve_inside(library / "notes.md", [])
    with pytest.raises(OutsideLibrary):
        resolve_inside(library / "notes.md", [library / "vanished"])


def test_download_gives_bytes_name_and_mime(library: Path) -> None:
    assert download(library / "reports" / "2023.pdf", [library]) == Download(
        data=b"%PDF-1.4 report", file_name="2023.pdf", mime="application/pdf"
    )
    assert download(str(library / "notes.md"), [library]).mime == "text/markdown"
    with pytest.raises(OutsideLibrary):
        download("/etc/passwd", [library])
    with pytest.raises(UnreadableFile, match="is a folder"):
        download(library / "reports", [library])


@pytest.mark.unprivileged  # as root, run with capabilities dropped (tests/conftest.py)
def test_an_unreadable_file_is_a_clear_error(library: Path) -> None:
    locked = library / "locked.txt"
    locked.write_text("x", encoding="utf-8")
    locked.chmod(0)
    with pytest.raises(UnreadableFile, match="cannot be read"):
        download(locked, [library])


@pytest.mark.parametrize(
    ("name", "mime"),
    [("a.PDF", "application/pdf"), ("a.txt", "text/plain"), ("a.html", "text/html"),
     ("a.unknown", "application/octet-stream"),
     ("a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")],
)
def test_mime_types(name: str, mime: str) -> None:
    assert mime_type(Path(name)) == mime
