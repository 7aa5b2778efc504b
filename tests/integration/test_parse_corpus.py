"""The PDF parser on ~100 real-world PDFs from ../shared/data/pdfs (see PROVENANCE.md there).

Every file must either parse into at least one non-empty block or fail with a DocumentError: never
any other exception. Files whose outcome PROVENANCE.md states (passwords, the 0-byte file, image-only
scans, files that need repair) are checked for exactly that outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.document import ParsedDocument
from ingest.parsers import parse_file
from rag.errors import DocumentError, EmptyFile, EncryptedFile, NoTextLayer
from tests.conftest import SHARED_DATA, SHARED_DATA_ABSENT

pytestmark = pytest.mark.corpus

PDFS = SHARED_DATA / "pdfs"
# Only a missing shared folder is a documented reason to skip; a shared folder without its PDFs fails.
ABSENT = f"{SHARED_DATA_ABSENT} ({SHARED_DATA}): the PDF corpus is not checked out next to the project"
MAX_BYTES = 200 * 1024 * 1024

# name pattern (relative to PDFS) -> the outcome PROVENANCE.md implies without any password
EXPECTED: dict[str, type[DocumentError] | type[ParsedDocument]] = {
    "pdfplumber-tests/empty.pdf": EmptyFile,
    "py-pdf-sample-files/005-libreoffice-writer-password_*.pdf": EncryptedFile,
    "pypdf-resources/*r2-user-password*.pdf": EncryptedFile,
    "pypdf-resources/*r4-aes-user-password*.pdf": EncryptedFile,
    "pypdf-resources/*r6-both-passwords*.pdf": EncryptedFile,
    "pypdf-resources/crazyones-encrypted-256*.pdf": EncryptedFile,
    "pdfplumber-tests/password-example.pdf": EncryptedFile,
    "pypdf-resources/*r6-empty-password*.pdf": ParsedDocument,
    # image-only scans
    "py-pdf-sample-files/007-imagemagick-images_imagemagick-ASCII85Decode.pdf": NoTextLayer,
    "py-pdf-sample-files/007-imagemagick-images_imagemagick-CCITTFaxDecode.pdf": NoTextLayer,
    "py-pdf-sample-files/007-imagemagick-images_imagemagick-lzw.pdf": NoTextLayer,
    # malformed on purpose, and repaired by pypdf's non-strict mode
    "pypdf-resources/issue-297.pdf": ParsedDocument,
    "pdfplumber-tests/malformed-from-issue-932.pdf": ParsedDocument,
    "pdfplumber-tests/issue-848.pdf": ParsedDocument,
}

PASSWORDS = [
    ("py-pdf-sample-files/005-libreoffice-writer-password_*.pdf", "openpassword"),
    ("py-pdf-sample-files/005-libreoffice-writer-password_*.pdf", "permissionpassword"),  # the owner's
    ("pypdf-resources/*r2-user-password*.pdf", "asdfzxcv"),
    ("pypdf-resources/*r4-aes-user-password*.pdf", "asdfzxcv"),
    ("pypdf-resources/*r6-both-passwords*.pdf", "foo"),
    ("pypdf-resources/*r6-both-passwords*.pdf", "bar"),  # the owner's
    ("pypdf-resources/crazyones-encrypted-256*.pdf", "password"),
    ("pdfplumber-tests/password-example.pdf", "test"),
]


def corpus_files() -> list[object]:
    if not SHARED_DATA.is_dir():
        return [pytest.param(None, id="corpus-absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(path, id=str(path.relative_to(PDFS))) for path in sorted(PDFS.rglob("*.pdf"))]


def one_file(pattern: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(ABSENT)
    matches = sorted(PDFS.glob(pattern))
    assert len(matches) == 1, f"{pattern!r} should name exactly one file in {PDFS}, found {matches}"
    return matches[0]


def outcome(path: Path, passwords: tuple[str, ...] = ()) -> ParsedDocument | DocumentError:
    """Parse one file; any exception that is not a DocumentError escapes and fails the test."""
    name = path.relative_to(PDFS)
    try:
        document = parse_file(path, max_bytes=MAX_BYTES, pdf_passwords=passwords)
    except DocumentError as error:
        print(f"{name}: {type(error).__name__}: {error.reason}")
        return error
    except Exception as error:
        print(f"{name}: UNEXPECTED {type(error).__name__}: {error}")
        raise
    print(f"{name}: parsed, {document.page_count} pages, {len(document.blocks)} blocks, {document.warnings}")
    return document


def expected_for(path: Path) -> type[DocumentError] | type[ParsedDocument] | None:
    for pattern, expected in EXPECTED.items():
        if path.match(str(PDFS / pattern)):
            return expected
    return None


@pytest.mark.parametrize("path", corpus_files())
def test_every_pdf_parses_or_fails_with_a_document_error(path: Path) -> None:
    result = outcome(path)
    if isinstance(result, ParsedDocument):
        assert result.kind == "pdf"
        assert result.blocks, "parsed without a single block"
        for block in result.blocks:
            assert block.text.strip(), f"empty block on page {block.page}"
            assert 1 <= block.page <= result.page_count
    else:
        assert result.reason, "a DocumentError must say why"
    expected = expected_for(path)
    if expected is not None:
        assert isinstance(result, expected), f"expected {expected.__name__}, got {result!r}"


@pytest.mark.parametrize("pattern", list(EXPECTED))
def test_files_with_known_outcomes_are_present(pattern: str) -> None:
    one_file(pattern)  # a renamed file would otherwise silently lose its expectation


@pytest.mark.parametrize(("pattern", "password"), PASSWORDS)
def test_encrypted_pdf_needs_its_password(pattern: str, password: str) -> None:
    path = one_file(pattern)
    with pytest.raises(EncryptedFile, match="needs a password"):
        parse_file(path, max_bytes=MAX_BYTES)
    result = outcome(path, ("not it", password))
    assert isinstance(result, ParsedDocument), f"the password did not open it: {result!r}"
    assert result.text.strip()
