"""The Settings page: which LLM server answers, and how; saved in the data folder (`settings.json`).

Precedence: command-line flags, then environment variables, then these saved values, then the defaults. The
page shows where each value comes from, and says so when a saved value is hidden by a flag or variable."""

from __future__ import annotations

from typing import Any

import streamlit as st

from rag.errors import ArchivistError
from rag.settings import SECTIONS, env_name, section_fields, setting_sources
from ui.safe_markdown import plain, safe
from ui.service import ArchivistService
from ui.settings_changes import SettingInfo, save_changes, setting_rows
from ui.state import page_service

SOURCE_LABELS = {"flag": "command line", "environment": "environment variable", "saved": "saved here",
                 "default": "default"}
EFFORTS = ("low", "medium", "high")


def render() -> None:
    st.title("Settings", anchor=False)
    service = page_service()
    rows = {row.name: row for row in setting_rows(service)}
    settings = service.settings
    with st.form("settings"):
        st.subheader("Language model", anchor=False)
        llm = st.radio("Server", ["ollama", "openai"], index=["ollama", "openai"].index(settings.llm),
                       format_func={"ollama": "Ollama", "openai": "OpenAI-compatible (vLLM, LM Studio, llama.cpp)"}
                       .__getitem__, horizontal=True, help=help_for(rows, "llm"))
        ollama_host = st.text_input("Ollama address", settings.ollama_host, help=help_for(rows, "ollama_host"))
        base_url = st.text_input("OpenAI-compatible base URL", settings.openai_base_url,
                                 help=help_for(rows, "openai_base_url"))
        api_key = st.text_input("API key (OpenAI-compatible)", type="password",
                                placeholder="saved" if settings.openai_api_key else "none",
                                help="Left empty, the saved key stays. " + help_for(rows, "openai_api_key"))
        model = st.text_input("Model", settings.model, help=help_for(rows, "model"))
        columns = st.columns(2)
        num_ctx = columns[0].number_input("Context window (tokens)", min_value=2048, max_value=262144,
                                          value=settings.num_ctx, step=1024, help=help_for(rows, "num_ctx"))
        effort = columns[1].selectbox("Reasoning effort", EFFORTS, index=EFFORTS.index(settings.effort),
                                      help=help_for(rows, "effort"))
        st.subheader("Encrypted PDFs", anchor=False)
        passwords = st.text_area("Passwords to try, one per line", height=80,
                                 placeholder=f"{len(settings.pdf_passwords)} saved" if settings.pdf_passwords else "",
                                 help="Left empty, the saved passwords stay. Stored in the data folder, readable "
                                      "only by you (file mode 0600).")
        submitted = st.form_submit_button("Save", type="primary")
    if submitted:
        changes: dict[str, Any] = {"llm": llm, "ollama_host": ollama_host, "openai_base_url": base_url,
                                   "model": model, "num_ctx": int(num_ctx), "effort": effort}
        if api_key.strip():
            changes["openai_api_key"] = api_key.strip()
        if passwords.strip():
            changes["pdf_passwords"] = [line for line in passwords.splitlines() if line]
        save(service, rows, changes)
    show_sources({row.name: row for row in setting_rows(service)})  # after a save, the saved values
    show_tuning(service)


def help_for(rows: dict[str, SettingInfo], name: str) -> str:
    row = rows.get(name)
    if row is None:
        return ""
    return safe(f"{row.description} Now from: {SOURCE_LABELS.get(row.source, row.source)}.")


def save(service: ArchivistService, rows: dict[str, SettingInfo], changes: dict[str, Any]) -> None:
    try:
        save_changes(service, changes)
    except ArchivistError as error:
        st.error(safe(str(error)))
        return
    hidden = [name for name in changes if rows.get(name) and rows[name].source in ("flag", "environment")]
    st.success("Saved. New questions use these settings.", icon=":material/check_circle:")
    if hidden:
        st.warning("Saved, but a command-line flag or environment variable still decides: "
                   + ", ".join(f"`{name}`" for name in hidden) + ".")


def show_sources(rows: dict[str, SettingInfo]) -> None:
    st.subheader("Where each value comes from", anchor=False)
    table = [
        {"setting": name, "value": "••••" if row.secret and row.value else str(row.value),
         "from": SOURCE_LABELS.get(row.source, row.source)}
        for name, row in rows.items()
    ]
    st.dataframe(table, hide_index=True, width="stretch")
    st.caption("Command-line flags win over environment variables, which win over values saved here, which win "
               "over the defaults. " + plain("Saved in the data folder's settings.json."))


def show_tuning(service: ArchivistService) -> None:
    """The search, support-check and chunking tuning: read-only here, set by environment variable or by hand in
    settings.json."""
    sources = setting_sources(**service.flags)
    with st.expander("Tuning: search, answer checking, chunking"):
        table = [
            {"setting": f"{section}.{name}", "value": str(getattr(getattr(service.settings, section), name)),
             "from": SOURCE_LABELS.get(sources[f"{section}.{name}"], sources[f"{section}.{name}"]),
             "variable": env_name(f"{section}.{name}")}
            for section in SECTIONS
            for name in section_fields(section)
        ]
        st.dataframe(table, hide_index=True, width="stretch")
        st.caption(plain('Set by environment variable, or in the data folder\'s settings.json as e.g. '
                         '{"retrieval": {"per_document": 2}}; the page does not edit these.'))
