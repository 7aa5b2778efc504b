"""The Library page: the watched folders, every document with its status, and the index's upkeep (check and
repair, pause and resume, reset). It only draws; ui/library.py does the work, on the shared service."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import streamlit as st

from ingest.library import IndexCheck
from rag.errors import ArchivistError
from ui import library
from ui.safe_markdown import code, plain, safe
from ui.service import ArchivistService
from ui.state import page_service

REFRESH = timedelta(seconds=2)
STATUSES = ("indexed", "failed", "skipped")


def render() -> None:
    st.title("Library", anchor=False)
    service = page_service()
    indexing_progress(service)
    folders_section(service)
    documents_section(service)
    upkeep_section(service)


@st.fragment(run_every=REFRESH)
def indexing_progress(service: ArchivistService) -> None:
    """Live: what the indexer is doing, redrawn every few seconds."""
    status = service.status()
    if service.paused:
        st.warning("Indexing is paused: changes wait until you resume it.", icon=":material/pause_circle:")
    elif status.indexing or status.pending:
        progress = service.progress()
        done, total = (progress.done, progress.total) if progress is not None else (0, 0)
        label = f"Indexing… {done:,} of {total:,} files" if total else "Indexing…"
        if status.pending:
            label += f" · {status.pending} changed files waiting"
        st.progress(min(done / total, 1.0) if total else 0.0, text=label)
    st.markdown(f"**{status.indexed:,}** indexed · **{status.failed:,}** failed · **{status.skipped:,}** skipped · "
                f"**{status.chunks:,}** chunks")


def folders_section(service: ArchivistService) -> None:
    st.subheader("Watched folders", anchor=False)
    for folder in library.folders(service):
        columns = st.columns([6, 2, 2])
        where = code(str(folder.path))
        if not folder.present:
            where += " — :orange[not there: not watched until it is back]"
        columns[0].markdown(where)
        columns[1].caption(f"{folder.documents:,} documents")
        if columns[2].button("Remove", key=f"remove-{folder.path}", help="Stop watching it and take its "
                             "documents out of the index (the files themselves are not touched)."):
            try:
                removed = library.remove_folder(service, folder.path)
            except ArchivistError as error:
                st.error(safe(str(error)))
            else:
                st.toast(f"Removed {plain(str(folder.path))} and its {len(removed):,} documents from the index.")
                st.rerun()
    with st.form("add-folder", clear_on_submit=True, border=False):
        columns = st.columns([8, 2], vertical_alignment="bottom")
        path = columns[0].text_input("Add a folder", placeholder="/home/you/Documents")
        if columns[1].form_submit_button("Add") and path.strip():
            try:
                added = library.add_folder(service, Path(path.strip()))
            except ArchivistError as error:
                st.error(safe(str(error)))
            else:
                st.toast(f"Watching {plain(str(added))}; its files are being indexed.")
                st.rerun()


def documents_section(service: ArchivistService) -> None:
    st.subheader("Documents", anchor=False)
    documents = library.documents(service)
    if not documents:
        st.caption("No documents yet: add a folder above.")
        return
    columns = st.columns([3, 2])
    name = columns[0].text_input("Filter by name", placeholder="part of a file name or folder")
    statuses = columns[1].multiselect("Status", STATUSES, default=list(STATUSES))
    rows = [
        {
            "file": document.name,
            "status": document.status,
            "pages": document.pages,
            "chunks": document.chunks,
            "reason": document.reason or "",
            "modified": datetime.fromtimestamp(document.modified),
            "folder": str(Path(document.path).parent),
        }
        for document in documents
        if document.status in statuses and name.lower() in document.path.lower()
    ]
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"modified": st.column_config.DatetimeColumn("modified", format="YYYY-MM-DD HH:mm")})
    st.caption(f"{len(rows):,} of {len(documents):,} documents. Click a column's title to sort.")


def upkeep_section(service: ArchivistService) -> None:
    st.subheader("Upkeep", anchor=False)
    columns = st.columns(3)
    if columns[0].button("Check index", icon=":material/fact_check:",
                         help="Compare the index with the files on disk."):
        st.session_state["library-check"] = library.check_index(service)
    if service.paused:
        if columns[1].button("Resume indexing", icon=":material/play_arrow:"):
            service.resume_indexing()
            st.rerun()
    elif columns[1].button("Pause indexing", icon=":material/pause:"):
        service.pause_indexing()
        st.rerun()
    if columns[2].button("Reset index…", icon=":material/restart_alt:"):
        confirm_reset(service)
    check: IndexCheck | None = st.session_state.get("library-check")
    if check is not None:
        show_check(service, check)


def show_check(service: ArchivistService, check: IndexCheck) -> None:
    if check.ok:
        st.success("The index matches the files on disk.", icon=":material/check_circle:")
        return
    lines = [
        (f"{len(check.stale):,} changed on disk since indexed", check.stale),
        (f"{len(check.missing):,} indexed but gone from disk", check.missing),
        (f"{len(check.failed):,} failed", tuple(f"{item.path} — {item.reason}" for item in check.failed)),
        (f"{len(check.unindexed):,} on disk but not indexed", check.unindexed),
        (f"{len(check.duplicates):,} sets of identical files (information only)",
         tuple(" = ".join(group) for group in check.duplicates)),
    ]
    with st.container(border=True):
        for label, paths in lines:
            if paths:
                with st.expander(label):
                    st.markdown("\n".join(f"- {plain(path)}" for path in paths))
        if check.orphan_vectors or check.missing_vectors:
            st.markdown(f"{check.orphan_vectors:,} vectors without a passage, {check.missing_vectors:,} passages "
                        "without a vector")
        if check.absent_folders:
            st.caption("Not checked, the folder is not there: " + ", ".join(map(plain, check.absent_folders)))
        if st.button("Fix all", type="primary", icon=":material/build:"):
            try:
                repair = library.repair_index(service, check)
            except ArchivistError as error:
                st.error(safe(str(error)))
            else:
                st.session_state["library-check"] = library.check_index(service)
                st.toast(f"Fixed: {len(repair.report.results):,} files read again, {len(repair.removed):,} "
                         "removed from the index.")
                st.rerun()


@st.dialog("Reset the index?")
def confirm_reset(service: ArchivistService) -> None:
    st.markdown("Every document is taken out of the index and the watched folders are read again from "
                "scratch. Your files are not touched. This can take a while for a large library.")
    keep = st.checkbox("Keep the embedding cache (faster: unchanged text is not embedded again)", value=True)
    if st.button("Reset", type="primary"):
        try:
            library.reset_index(service, keep_embeddings=keep)
        except ArchivistError as error:
            st.error(safe(str(error)))
        else:
            st.session_state.pop("library-check", None)
            st.rerun()
