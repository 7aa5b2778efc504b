"""Opening files for the page, only from inside the watched folders.

The page shows and offers files named by the index; a path could still come from a crafted request or a
stale entry, so every path is resolved (symbolic links and `..` followed) and must then lie inside one
of the watched folders, themselves resolved the same way.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import OutsideLibrary, UnreadableFile

logger = logging.getLogger(__name__)

# Types the standard table may not know on every system; the rest fall back to mimetypes, then bytes.
_MIME_TYPES = {
    ".pdf": "application/pdf",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".html": "text/html",
    ".htm": "text/html",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


@dataclass(frozen=True)
class Download:
    """A file as the page offers it for download (st.download_button's data, file_name and mime)."""

    data: bytes
    file_name: str
    mime: str


def resolve_inside(path: str | Path, roots: Sequence[Path]) -> Path:
    """The real path of `path`, when it is an existing file or folder inside one of `roots`.

    Relative paths are taken from no root in particular: they resolve against the working folder, so a
    `../../etc/passwd` ends up outside and is refused like any other outsider.
    """
    try:
        real = Path(path).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):  # missing, a symlink loop, a bad name
        raise OutsideLibrary(f"{path} does not exist or cannot be opened.") from None
    for root in roots:
        try:
            real_root = Path(root).expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            continue  # a watched folder that vanished contains nothing
        # is_relative_to compares whole parts: /docs-private is not inside /docs
        if real.is_relative_to(real_root):
            return real
    raise OutsideLibrary(f"{path} is not inside the folders Archivist watches, so it is not shown.")


def mime_type(path: Path) -> str:
    """The MIME type a browser should be given for this file."""
    suffix = path.suffix.lower()
    return _MIME_TYPES.get(suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def download(path: str | Path, roots: Sequence[Path]) -> Download:
    """The bytes, name and MIME type of a file inside the watched folders, for a download button."""
    real = resolve_inside(path, roots)
    if not real.is_file():
        raise UnreadableFile(f"{path} is a folder, not a file.")
    try:
        data = real.read_bytes()
    except OSError as error:
        raise UnreadableFile(f"{path} cannot be read ({error.strerror or error}).") from None
    # The name the user knows, i.e. the link's own name when a watched folder holds a symbolic link.
    return Download(data=data, file_name=Path(path).name or real.name, mime=mime_type(real))
