"""What every page of the app shares: the one background service per server process, and text helpers.

Kept out of ui/app.py, which Streamlit runs as `__main__` on every page load: the service itself lives in
ui/bootstrap.py (`process_service`), opened once per process when the server starts (ui/server.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import streamlit as st

from rag import offline  # noqa: F401  (before anything heavy)
from rag.errors import ArchivistError
from ui.bootstrap import current_service, process_service
from ui.safe_markdown import plain, safe
from ui.service import ArchivistService

__all__ = ["get_service", "page_service", "parse_options", "plain", "safe"]


def parse_options(argv: list[str]) -> argparse.Namespace:
    """The app's own options, which ui/launch.py passes after Streamlit's `--`."""
    parser = argparse.ArgumentParser(prog="archivist ui", description="Archivist's page (see `archivist ui`).")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("paths", nargs="*", type=Path)
    return parser.parse_args(argv)


def get_service() -> ArchivistService:
    """The service a test injected, else the process's one service (opened when the server started)."""
    injected = current_service()
    if injected is not None:
        return injected  # tests: argv belongs to pytest then, not to us
    options = parse_options(sys.argv[1:])
    return process_service(options.data_dir, options.paths)


def page_service() -> ArchivistService:
    """The shared service for a page; when it cannot be opened, its message as the page's one banner, and the
    page stops there."""
    try:
        with st.spinner("Opening the index…"):
            return get_service()
    except ArchivistError as error:
        st.error(safe(str(error)))
        st.stop()
