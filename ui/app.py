"""The Streamlit page: ask questions about your documents and read cited answers, all on this machine.

Served by `archivist ui [PATH...]` (see ui/launch.py), which passes the app its own options after `--`.
The index, the folder watcher and the LLM client live in one shared service (ui/service.py); this page
only draws. LLM and Archivist errors become one banner here and never a traceback. Every string drawn goes
through ui/safe_markdown.py (`safe` for the model's markdown and our messages, `plain` for document text,
`code` for paths): nothing on the page can load from, or link to, another host.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from rag import offline  # noqa: F401  (before anything imports chromadb or sentence_transformers)
from rag.answer.ask import (
    Answer,
    AnswerDelta,
    AnswerRetracted,
    Finished,
    Mode,
    PassagesFound,
    ReasoningDelta,
    StepTaken,
)
from rag.answer.events import Step
from rag.answer.prompt import Exchange
from rag.egress import refused_count
from rag.errors import ArchivistError, LLMError
from rag.records import Effort, Filters, Hit
from ui import library_page, settings_page
from ui.files import download, mime_type, resolve_inside
from ui.page_image import render_page
from ui.safe_markdown import code, plain, safe
from ui.service import ArchivistService
from ui.state import get_service, page_service

EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")
MAX_SOURCES = 20
FILE_TYPES = {"pdf": "PDF", "docx": "Word", "markdown": "Markdown", "html": "HTML", "text": "Text"}
STATUS_REFRESH = timedelta(seconds=2)  # another process or the watcher may change the index at any time
REDRAW_S = 0.1  # streamed text is redrawn at most this often
HOW_TO_ADD = (
    "To index a folder, start Archivist with it: `archivist ui ~/Documents` "
    "(or `make run DOCS=~/Documents`). It keeps the index current while it runs."
)


@dataclass
class Turn:
    """One question of this session and what came of it, kept to redraw the conversation."""

    question: str
    reasoning: str = ""
    answer: Answer | None = None
    error: str | None = None
    hits: list[Hit] = field(default_factory=list)  # the passages found, shown alone when the LLM failed
    search_only: bool = False
    finished: bool = False  # False when redrawn: the run answering it was cut short (see ask_page)
    steps: list[Step] = field(default_factory=list)  # research mode's tool calls, as they happened


# ----- text helpers -----
def model_text(text: str) -> str:
    """The model's markdown made safe to draw: formatting kept; no images, no outside links, no HTML, no
    LaTeX (`$5 and $10` in a financial answer is money, not math). See ui/safe_markdown.py."""
    return safe(text)


def link_citations(text: str, key: str, numbers: set[int]) -> str:
    """`model_text`, with each valid `[n]` a link to its entry in the source list below the answer."""
    return safe(text, {n: f"#{key}-source-{n}" for n in numbers})


# ----- sidebar -----
@st.fragment(run_every=STATUS_REFRESH)
def index_status(service: ArchivistService) -> None:
    """The index's counts, redrawn every few seconds while the page is open."""
    status = service.status()
    # A Material icon, not an emoji: the icon font ships with Streamlit, emoji fonts may be missing.
    if status.indexing:
        st.markdown(":material/hourglass_top: **indexing…**")
    elif status.pending:
        st.markdown(f":material/hourglass_top: {status.pending} changed files waiting to be indexed")
    st.markdown(
        f"**Documents indexed:** {status.indexed}  \n"
        f"**Failed:** {status.failed} · **Skipped:** {status.skipped}  \n"
        f"**Chunks:** {status.chunks}"
    )
    if status.errors:
        with st.expander(f"Problems ({len(status.errors)})"):
            for error in status.errors:
                st.caption(plain(error))
    # The first scan just finished: redraw the whole page, whose hints depend on it.
    was_indexing = st.session_state.get("was_indexing", status.indexing)
    st.session_state["was_indexing"] = status.indexing
    if was_indexing and not status.indexing:
        st.rerun(scope="app")


@dataclass(frozen=True)
class Controls:
    """What the sidebar's answer controls are set to."""

    effort: Effort
    sources: int
    filters: Filters
    research: bool = True


def sidebar(service: ArchivistService) -> Controls:
    """Index status, watched folders and the answer controls."""
    settings = service.settings
    with st.sidebar:
        st.subheader("Index", anchor=False)
        index_status(service)
        if service.roots:
            st.markdown("**Watched folders**  \n" + "  \n".join(code(str(root)) for root in service.roots))
        else:
            st.caption("No folders watched.")
        st.subheader("Answers", anchor=False)
        effort = st.radio(
            "Reasoning effort", EFFORTS, index=EFFORTS.index(settings.effort), horizontal=True,
            help="How long gpt-oss thinks before answering: low is fastest, high is most careful.",
        )
        research = st.toggle(
            "Research mode", value=settings.research.mode == "research",
            help="The model may search your library again, open pages, find phrases and calculate before it "
                 "answers (slower, better for questions that need several places or arithmetic). Off: one answer "
                 "from the passages found. Needs a model that takes tools, such as gpt-oss.",
        )
        sources = st.slider("Passages shown without the model", 1, MAX_SOURCES, min(settings.sources, MAX_SOURCES),
                            help="How many of the best passages are shown when the model is not asked (it is "
                                 "down, or nothing relevant was found). The model itself reads as many passages "
                                 "as fit its share of the context window (ARCHIVIST_CONTEXT__SHARE).")
        folder = None
        if len(service.roots) > 1:
            choice = st.selectbox("Only in folder", ["All folders", *map(str, service.roots)])
            folder = None if choice == "All folders" else choice
        kinds = st.multiselect("Only these file types", list(FILE_TYPES), format_func=FILE_TYPES.__getitem__,
                               placeholder="All file types")
        where = settings.ollama_host if settings.llm == "ollama" else settings.openai_base_url
        st.caption(f"Model {code(settings.model)} at {code(where)}")
        refused = refused_count()
        st.caption(f":material/shield: Connections off this machine refused since start: **{refused}**",
                   help="Archivist refuses every connection to another machine except the servers you configured "
                        "(ARCHIVIST_EGRESS_LOG=<file> records each one).")
    return Controls(effort, sources, Filters(folder=folder, kinds=tuple(kinds)), research)


# ----- one answer -----
def show_sources(answer: Answer, key: str) -> None:
    """The cited sources under an answer: file, page, supporting quote, the passage and the full path."""
    if not answer.citations:
        return
    st.markdown("**Sources**")
    for citation in answer.citations:
        hit = answer.passages[citation.n - 1]
        with st.container(border=True):
            # The one bit of HTML on the page: the anchor the answer's [n] links point at. `plain` escapes
            # < and > in the file name, so a name cannot smuggle in markup.
            st.markdown(
                f'<a id="{key}-source-{citation.n}"></a>'
                f"**\\[{citation.n}\\] {plain(PurePath(hit.path).name)}** — {hit.pages_label}",
                unsafe_allow_html=True,
            )
            st.markdown(f"> “{plain(' '.join(citation.quote.split()))}”")
            with st.expander("Passage"):
                st.markdown(highlighted(hit.text, citation.quote_start, citation.quote_end))
            show_original(hit, citation.quote, f"{key}-source-{citation.n}")
            st.caption(plain(hit.path))


def show_original(hit: Hit, quote: str, key: str) -> None:
    """For a PDF, the page itself with the quote marked (on request: rendering takes a moment); for every
    file, a button to download it. Only files inside the watched folders are ever read."""
    service = get_service()
    roots = service.roots
    try:
        path = resolve_inside(hit.path, roots)
    except ArchivistError as error:
        st.caption(plain(str(error)))
        return
    columns = st.columns([3, 2])
    if path.suffix.lower() == ".pdf" and columns[0].toggle(f"Show page {hit.page_start}", key=f"{key}-page"):
        try:
            image = render_page(path, hit.page_start, roots, quote=quote,
                                passwords=service.settings.pdf_passwords)
        except ArchivistError as error:
            st.caption(plain(str(error)))
        else:
            marked = "the passage is marked" if image.marks else "the passage could not be located on the image"
            st.image(image.png, caption=f"{plain(path.name)}, page {hit.page_start} ({marked})")
    columns[1].download_button(
        "Download the original", data=lambda: download(path, roots).data, file_name=path.name,
        mime=mime_type(path), key=f"{key}-download", icon=":material/download:", on_click="ignore",
    )


def highlighted(text: str, start: int, end: int) -> str:
    """The passage as markdown-safe text with text[start:end] (the supporting sentence) highlighted."""
    if not 0 <= start < end <= len(text):
        return plain(text)
    return f"{plain(text[:start])}:orange-background[{plain(text[start:end])}]{plain(text[end:])}"


def show_checks(answer: Answer) -> None:
    """The sentences a reader should check: not supported by what they cite, or citing nothing."""
    flagged = [sentence for sentence in answer.sentences if sentence.status != "supported"]
    if not flagged:
        return
    with st.container(border=True):
        for sentence in flagged:
            label = ("Not supported by the source it cites" if sentence.status == "unsupported"
                     else "No citation")
            line = f":orange[:material/warning: **{label}:**] {plain(sentence.text)}"
            if sentence.status == "uncited" and sentence.support is not None:
                source = answer.passages[sentence.support.n - 1]
                line += (f"  \n:gray[Closest source: \\[{sentence.support.n}\\] "
                         f"{plain(PurePath(source.path).name)}, {source.pages_label} — "
                         f"“{plain(' '.join(sentence.support.quote.split()))}”]")
            st.markdown(line)


def show_search_only(hits: list[Hit]) -> None:
    """The passages found for a question the model could not answer: the page as a search engine."""
    st.markdown("**Top passages for your question (search only)**")
    show_passages(hits)


def show_passages(hits: list[Hit]) -> None:
    if not hits:
        st.caption("No passages matched: is anything indexed yet?")
    for number, hit in enumerate(hits, start=1):
        with st.container(border=True):
            st.markdown(
                f"**\\[{number}\\] {plain(PurePath(hit.path).name)}** — {hit.pages_label} · score {hit.score:.2f}"
            )
            st.markdown(plain(hit.text))
            st.caption(plain(hit.path))


def show_outcome(turn: Turn, key: str, answer_slot: DeltaGenerator) -> None:
    """The finished part of an answer: text with linked citations and the sources, or the error."""
    if turn.answer is not None:
        numbers = {citation.n for citation in turn.answer.citations}
        answer_slot.markdown(link_citations(turn.answer.answer, key, numbers))
        if turn.answer.query and turn.answer.query != turn.question:
            st.caption(f"Searched for: {plain(turn.answer.query)}")  # the follow-up, made standalone
        for notice in turn.answer.notices:
            st.caption(plain(notice))
        if not turn.answer.found_relevant:
            st.caption("Nothing in your documents came close to this question, so the model was not asked. "
                       "The nearest passages:")
            show_passages(turn.answer.passages)
            return
        show_checks(turn.answer)
        show_sources(turn.answer, key)
        return
    answer_slot.empty()
    if turn.error:
        st.error(safe(turn.error))
    if turn.search_only:
        show_search_only(turn.hits)


@dataclass
class StreamedText:
    """A slot showing model text as it streams in. Each redraw sanitises the whole text again (a parse:
    about 5 ms per KB), so redraws come at most every REDRAW_S, and never take more than a third of the
    time: a long reasoning would otherwise cost time quadratic in its length."""

    slot: DeltaGenerator
    cursor: str = ""
    text: str = ""
    drawn: int = -1  # how much of `text` the slot shows
    due: float = 0.0

    def add(self, delta: str) -> None:
        self.text += delta
        if time.monotonic() >= self.due:
            self.draw(self.cursor)

    def draw(self, cursor: str = "") -> None:
        started = time.monotonic()
        self.slot.markdown(model_text(self.text) + cursor)
        self.drawn = len(self.text)
        self.due = started + max(REDRAW_S, 3 * (time.monotonic() - started))

    def finish(self) -> None:
        """Show all of the text, without the cursor."""
        if self.drawn != len(self.text) or self.cursor:
            self.draw()


def step_line(step: Step, passages: Sequence[Hit] = ()) -> str:
    """One research step as safe markdown: its summary, and for a calculation the code, its output and where
    each operand came from (the passage's label, file and page)."""
    line = plain(step.summary) + (" — *failed*" if step.failed else "")
    calculation = step.calculation
    if calculation is None:
        return f"{step.number}. {line}"
    parts = [f"{step.number}. {line}"]
    if "\n" in calculation.code.strip():  # a one-line calculation is all in its summary already
        parts.append(f"    {code(calculation.code.strip())} → {code(calculation.output.strip())}")
    for operand, labels in calculation.operands.items():
        places = []
        for label in labels[:3]:
            hit = passages[label - 1] if 0 < label <= len(passages) else None
            where = f" {code(PurePath(hit.path).name)} {plain(hit.pages_label)}" if hit else ""
            places.append(f"[{label}]{where}")
        parts.append(f"    {code(operand)} from " + "; ".join(places))
    return "  \n".join(parts)


def show_steps(steps: Sequence[Step], slot: DeltaGenerator, passages: Sequence[Hit] = ()) -> None:
    """The research steps, folded like the reasoning."""
    slot.markdown("\n".join(step_line(step, passages) for step in steps))


def show_turn(turn: Turn, key: str) -> None:
    """Redraw a past question and its answer."""
    with st.chat_message("user"):
        st.markdown(plain(turn.question))
    with st.chat_message("assistant"):
        if turn.reasoning:
            st.expander("Reasoning", expanded=False).markdown(model_text(turn.reasoning))
        if turn.steps:
            passages = turn.answer.passages if turn.answer is not None else ()
            show_steps(turn.steps, st.expander(steps_title(turn.steps), expanded=False).empty(), passages)
        if not turn.finished:
            st.warning("This answer was cut short: the page was redrawn before it finished (a reconnection, or "
                       "another question sent meanwhile). Ask again to get it.", icon=":material/replay:")
            if turn.hits:
                show_search_only(turn.hits)
            return
        show_outcome(turn, key, st.empty())


def answer_live(
    service: ArchivistService, turn: Turn, controls: Controls, key: str, earlier: Sequence[Exchange] = (),
) -> None:
    """Ask, streaming reasoning and answer onto the page as they arrive, into `turn` (already in the session's
    history, so a run cut short leaves the question on the page); `earlier` makes follow-ups work."""
    question = turn.question
    with st.chat_message("user"):
        st.markdown(plain(question))
    with st.chat_message("assistant"):
        reasoning_area = st.container()  # keeps the expander above the answer, though it appears later
        steps_area = st.container()
        answer_slot = st.empty()
        steps_slot: DeltaGenerator | None = None
        reasoning: StreamedText | None = None
        found = False
        answer_text = StreamedText(answer_slot, cursor=" ▌")
        try:
            mode: Mode = "research" if controls.research else "quick"
            for event in service.ask(question, controls.effort, controls.sources, history=earlier,
                                     filters=controls.filters, mode=mode):
                if isinstance(event, PassagesFound):
                    turn.hits, found = event.passages, True
                elif isinstance(event, ReasoningDelta):
                    if reasoning is None:
                        reasoning = StreamedText(reasoning_area.expander("Reasoning", expanded=False).empty())
                    turn.reasoning += event.text
                    reasoning.add(event.text)
                elif isinstance(event, AnswerDelta):
                    answer_text.add(event.text)
                elif isinstance(event, AnswerRetracted):
                    answer_text.text = ""  # it was a preamble to the tool calls that follow
                    answer_text.draw(answer_text.cursor)
                elif isinstance(event, StepTaken):
                    turn.steps.append(event.step)
                    if steps_slot is None:
                        steps_slot = steps_area.expander("Research steps", expanded=False).empty()
                    show_steps(turn.steps, steps_slot)
                elif isinstance(event, Finished):
                    turn.answer = event.answer
                    if steps_slot is not None:
                        show_steps(turn.steps, steps_slot, event.answer.passages)
        except LLMError as error:
            # Without the model the page is still a search engine: show what was found.
            turn.error, turn.search_only = str(error), True
            if not found:
                try:
                    turn.hits = service.search(question, controls.sources)
                except ArchivistError as search_error:
                    turn.error += f"\n\n{search_error}"
        except ArchivistError as error:
            turn.error = str(error)
        if reasoning is not None:
            reasoning.finish()
        turn.finished = True
        show_outcome(turn, key, answer_slot)


def steps_title(steps: Sequence[Step]) -> str:
    return "Research steps"


# ----- the page -----
def ask_page() -> None:
    """Questions and cited answers, with the index's status and the answer controls in the sidebar."""
    st.title("Archivist", anchor=False)
    st.caption("Answers from your own documents, with the file, page and sentence they come from. "
               "Nothing leaves this machine.")
    service = page_service()
    controls = sidebar(service)

    status = service.status()
    if status.note:
        st.info(safe(status.note))
    problem = service.llm_problem()
    if problem:
        st.warning(f"{safe(problem)}\n\nMeanwhile questions are answered with the passages that match best (search "
                   "only).", icon=":material/cloud_off:")
    if service.startup_error:
        st.error(safe(service.startup_error))
    if status.documents == 0:
        if not status.roots:
            st.info(f"No documents yet. {HOW_TO_ADD}")
        elif status.indexing:
            st.info("Indexing your documents… You can ask already; answers use what is indexed so far.")
        else:
            folders = ", ".join(code(str(root)) for root in status.roots)
            st.info(f"Nothing to index yet in {folders}: add PDF, Word, Markdown, HTML or text files there "
                    f"and they are indexed as they appear. {HOW_TO_ADD}")

    history: list[Turn] = st.session_state.setdefault("history", [])
    for number, turn in enumerate(history):
        show_turn(turn, f"turn-{number}")
    question = st.chat_input("Ask a question about your documents")
    if question and question.strip():
        earlier = [Exchange(turn.question, turn.answer.answer) for turn in history
                   if turn.answer is not None and turn.answer.found_relevant]
        # In the history before it is answered: Streamlit ends a run when a new one preempts it (a reconnecting
        # browser, a question sent meanwhile), and an answer kept only in this run's locals would vanish with
        # its question; kept here, the next run shows it as cut short.
        current = Turn(question.strip())
        history.append(current)
        answer_live(service, current, controls, f"turn-{len(history) - 1}", earlier)


def main() -> None:
    st.set_page_config(page_title="Archivist", layout="centered")
    # No page icons: Streamlit turns a page's icon into the tab's favicon, and a Material icon one is fetched
    # from Google's font servers (the browser test's request log caught it).
    pages = [
        st.Page(ask_page, title="Ask", default=True),
        st.Page(library_page.render, title="Library", url_path="library"),
        st.Page(settings_page.render, title="Settings", url_path="settings"),
    ]
    st.navigation(pages).run()


if __name__ == "__main__":  # how Streamlit runs the script; importing it (tests) draws nothing
    main()
