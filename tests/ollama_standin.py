"""A stand-in for Ollama: a real HTTP server on 127.0.0.1 that speaks Ollama's API for gpt-oss.

Tests script replies with `enqueue()` and inspect `requests`, the way simonw/llm's MockModel works:
a fake, not a mock. The wire format follows /work/shared/docs/OLLAMA_GPT_OSS.md, so the official
`ollama` client (and our own code) cannot tell it from the real server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.http_standin import StandInHandler, StandInServer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-oss:20b"
OLLAMA_VERSION = "0.12.6"
CONTEXT_LENGTH = 131072
DEFAULT_NUM_CTX = 8192  # what Ollama uses for gpt-oss when a request does not say
NO_SOURCE_ANSWER = "I could not find the answer in your documents."  # same as rag.answer.prompt.NOT_IN_DOCUMENTS

# Go's net/http answers unknown routes with exactly this body.
_NOT_FOUND_TEXT = "404 page not found"
# A source block starts with "[n]" at the start of a line and runs to the next one or a blank line.
_SOURCE_RE = re.compile(r"^\[(\d+)\][ \t]*(.*?)(?=\n\s*\n|\n\[\d+\]|\Z)", re.MULTILINE | re.DOTALL)
_QUOTED_SOURCE_RE = re.compile(r"^\[(\d+)\][^\n]*\n<source>\n(.*?)\n</source>", re.MULTILINE | re.DOTALL)
_SENTENCE_RE = re.compile(r".+?[.!?](?=\s|$)")


@dataclass
class ScriptedReply:
    """One answer the stand-in will stream back: reasoning, final text and how the stream ends."""

    thinking: str = "The user asks a question; I answer it."
    content: str = "Here is the answer."
    done_reason: str = "stop"  # "length" scripts a truncated answer (content may be empty)
    error_after_chunks: int | None = None  # send N chunks, then an {"error": ...} line
    error: str = "an error was encountered while running the model"
    prompt_eval_count: int | None = None  # None: estimate from the messages
    delay_s: float = 0.0  # pause before each chunk; 0 falls back to the server's chunk_delay_s
    end_without_done: bool = False  # end the stream cleanly after the pieces, with no final `done` line
    # Tool calls as (name as on the wire, arguments): sent after the thinking and content, in the final chunk
    # as Ollama's harmony parser does for gpt-oss (or in a chunk of their own before it, as other models' do).
    # Arguments are normally an object; anything else is sent as is, to test a client's guard.
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)
    tool_calls_in_final: bool = True
    status: int = 200  # anything else: answer `{"error": error}` with this HTTP status instead of a stream


# What Ollama answers when the harmony parser cannot read the model's tool call (ollama/ollama #12884).
MALFORMED_TOOL_CALL = ("error parsing tool call: raw='{\"query\": \"revenue 2023\"}]', "
                       "err=invalid character ']' after top-level value")


def malformed_tool_call() -> ScriptedReply:
    """The HTTP 500 Ollama sends for a tool call its parser could not read."""
    return ScriptedReply(thinking="", content="", status=500, error=MALFORMED_TOOL_CALL)


Responder = Callable[[dict[str, Any]], ScriptedReply]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now (for 'server down' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def split_tokens(text: str) -> list[str]:
    """Split text into word-ish pieces that join back to the same text, so streaming is visible."""
    return re.findall(r"\s*\S+|\s+", text)


def default_responder(request: dict[str, Any]) -> ScriptedReply:
    """Answer like a well-behaved gpt-oss. Offered a search tool (a name containing "search") and not yet
    given a tool result since the last question, it searches for the question; otherwise it quotes the first
    sentence of the first source in the latest tool result (else in the question's message) and cites it."""
    messages = request.get("messages") or []
    user = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((m.get("content") or "" for m in messages if m.get("role") == "system"), "")
    if system.startswith("Rewrite the user's last question"):
        # Archivist's follow-up rewrite: put the earlier question's words in front of the new one.
        earlier = [m.get("content") or "" for m in messages if m.get("role") == "user"][:-1]
        latest = user.split("stands alone:", 1)[-1].strip()
        rewrite = f"{earlier[-1].rstrip('?')}: {latest}" if earlier else latest
        return ScriptedReply(thinking="The user wants a standalone question.", content=rewrite)
    asked = " ".join((user.rsplit("Question:", 1)[-1] if "Question:" in user else user).split())
    question = asked[:120]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    results = [m.get("content") or "" for m in messages[last_user + 1:] if m.get("role") == "tool"]
    search = next((name for name in offered_tool_names(request) if "search" in name), None)
    if search is not None and not results:
        return ScriptedReply(thinking=f"The user asks {question!r}; I search the library first.", content="",
                             tool_calls=[(search, {"query": asked})])
    found = _first_source(results[-1]) if results else None
    number, first = found or _first_source(user) or ("", "")
    if not number:
        return ScriptedReply(thinking=f"The user asks {question!r}; no source answers it.",
                             content=NO_SOURCE_ANSWER)
    return ScriptedReply(thinking=f"The user asks {question!r}; source [{number}] answers it.",
                         content=f"{first} [{number}]")


def offered_tool_names(request: dict[str, Any]) -> list[str]:
    """The names of the tools a chat request offers (the same shape on Ollama and OpenAI wires)."""
    return [str((tool.get("function") or {}).get("name") or "") for tool in request.get("tools") or []
            if isinstance(tool, dict)]


def _first_source(text: str) -> tuple[str, str] | None:
    """The label number and first sentence of the first source block in `text`, if it has one."""
    quoted = _QUOTED_SOURCE_RE.search(text)
    source = quoted or _SOURCE_RE.search(text)
    if source is None:
        return None
    if quoted is not None:  # Archivist's form: "[n] file — pages", then the passage between <source> tags
        number, block = quoted.group(1), " ".join(quoted.group(2).split())
    else:  # a one-line block, as in the harmony doc's example, is the passage itself
        lines = source.group(2).strip().splitlines()
        number, block = source.group(1), " ".join(" ".join(lines[1:] or lines).split())
    sentence = _SENTENCE_RE.match(block)
    return number, sentence.group(0) if sentence else block


def _now() -> str:
    # Ollama's created_at is RFC 3339 in UTC with a literal Z.
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class OllamaStandIn(StandInServer[ScriptedReply]):
    """A fake Ollama server in a daemon thread; use as a context manager or via start()/stop()."""

    thread_name = "ollama-standin"

    def __init__(self, port: int = 0, chunk_delay_s: float = 0.0, models: set[str] | None = None,
                 without_tools: set[str] | None = None) -> None:
        super().__init__(port, chunk_delay_s, default_responder)
        self.models: set[str] = set(models) if models is not None else {DEFAULT_MODEL}
        # Models whose template takes no tools: /api/show leaves "tools" out of their capabilities and a chat
        # request that offers tools gets Ollama's 400.
        self.without_tools: set[str] = set(without_tools or ())

    @property
    def url(self) -> str:
        """Base URL to hand to a client, e.g. "http://127.0.0.1:54321"."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the /api/chat calls, oldest first."""
        return [r.json for r in self.requests if r.path == "/api/chat" and r.json is not None]

    @property
    def offered(self) -> list[list[str]]:
        """The names of the tools each /api/chat call offered, oldest first ([] for a call without tools)."""
        return [offered_tool_names(body) for body in self.chat_requests]


class _Handler(StandInHandler):
    """Routes one HTTP request to the matching Ollama endpoint."""

    def route(self) -> None:
        standin = self.server.standin
        raw, body, _ = self.read_and_record()
        route = (self.command, self.path.split("?", 1)[0])
        if raw and not isinstance(body, dict):
            self._send_json(400, {"error": "invalid JSON body"})
        elif route == ("GET", "/"):
            self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif route == ("GET", "/api/version"):
            self._send_json(200, {"version": OLLAMA_VERSION})
        elif route == ("GET", "/api/tags"):
            self._send_json(200, {"models": [_model_entry(m) for m in sorted(standin.models)]})
        elif route == ("POST", "/api/show"):
            self._show(body or {})
        elif route == ("POST", "/api/chat"):
            self._chat(body or {})
        else:
            self._send(404, _NOT_FOUND_TEXT.encode(), "text/plain")

    def _show(self, body: dict[str, Any]) -> None:
        model = body.get("model") or body.get("name") or ""
        if model not in self.server.standin.models:
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        self._send_json(200, _show_entry(model, tools=model not in self.server.standin.without_tools))

    def _chat(self, body: dict[str, Any]) -> None:
        standin = self.server.standin
        model = body.get("model") or ""
        if not model:
            self._send_json(400, {"error": "model is required"})
            return
        if model not in standin.models:
            self._send_json(404, {"error": f"model '{model}' not found"})
            return
        if body.get("tools") and model in standin.without_tools:
            # server/routes.go: CheckCapabilities fails with the model's full name, answered as a 400.
            full = model if "/" in model else f"registry.ollama.ai/library/{model}"
            full = full if ":" in full.rsplit("/", 1)[-1] else f"{full}:latest"
            self._send_json(400, {"error": f"{full} does not support tools"})
            return
        reply = standin.next_reply(body)
        if reply.status != 200:
            self._send_json(reply.status, {"error": reply.error})
            return
        chunks = _chunks(model, reply)
        final = _final(model, reply, body)
        if body.get("stream", True):  # Ollama streams unless told not to
            self._stream(chunks, final, reply)
        elif reply.error_after_chunks is not None:
            self._send_json(500, {"error": reply.error})
        else:
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.thinking:
                message["thinking"] = reply.thinking
            if reply.tool_calls:
                message["tool_calls"] = _tool_calls(reply)
            self._send_json(200, {**final, "message": message})

    def _stream(self, chunks: list[dict[str, Any]], final: dict[str, Any], reply: ScriptedReply) -> None:
        stopping = self.server.standin.stopping
        delay = reply.delay_s or self.server.standin.chunk_delay_s
        lines: Iterator[dict[str, Any]]
        if reply.end_without_done:
            lines = iter(chunks)  # as a server that stopped mid-reply but closed the stream properly
        elif reply.error_after_chunks is None:
            lines = iter([*chunks, final])
        else:
            lines = iter([*chunks[: reply.error_after_chunks], {"error": reply.error}])
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                if (delay and stopping.wait(delay)) or stopping.is_set():
                    self.close_connection = True  # stop() is cutting us off mid-stream
                    return
                if "created_at" in line:
                    line["created_at"] = _now()  # stamped when sent, as Ollama does, so delays show
                data = json.dumps(line, separators=(",", ":")).encode() + b"\n"
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _tool_calls(reply: ScriptedReply) -> list[dict[str, Any]]:
    # Ollama gives each call an id (server/routes.go toolCallId) and an index; results still go back by name.
    return [{"id": f"call_{hashlib.sha256(f'{i}{name}'.encode()).hexdigest()[:8]}",
             "function": {"index": i, "name": name, "arguments": arguments}}
            for i, (name, arguments) in enumerate(reply.tool_calls)]


def _chunks(model: str, reply: ScriptedReply) -> list[dict[str, Any]]:
    """The streamed lines before the final one: all thinking pieces, then all content pieces (then the tool
    calls, when they do not ride on the final line)."""
    thinking = [{"model": model, "created_at": _now(),
                 "message": {"role": "assistant", "content": "", "thinking": piece}, "done": False}
                for piece in split_tokens(reply.thinking)]
    content = [{"model": model, "created_at": _now(),
                "message": {"role": "assistant", "content": piece}, "done": False}
               for piece in split_tokens(reply.content)]
    calls = []
    if reply.tool_calls and not reply.tool_calls_in_final:
        calls = [{"model": model, "created_at": _now(),
                  "message": {"role": "assistant", "content": "", "tool_calls": _tool_calls(reply)}, "done": False}]
    return thinking + content + calls


def _final(model: str, reply: ScriptedReply, body: dict[str, Any]) -> dict[str, Any]:
    """The done line; Ollama omits zero counters and durations, so we do too."""
    prompt_tokens = reply.prompt_eval_count
    if prompt_tokens is None:  # about four characters a token
        prompt_tokens = sum(len(m.get("content") or "") for m in body.get("messages") or []) // 4
        # Ollama cuts a longer prompt to num_ctx tokens (logging "truncating input prompt") and goes on.
        prompt_tokens = min(prompt_tokens, int((body.get("options") or {}).get("num_ctx") or DEFAULT_NUM_CTX))
    eval_count = len(split_tokens(reply.thinking)) + len(split_tokens(reply.content))
    stats = {"load_duration": 50_000_000, "prompt_eval_count": prompt_tokens,
             "prompt_eval_duration": prompt_tokens * 100_000, "eval_count": eval_count,
             "eval_duration": eval_count * 20_000_000}
    stats = {"total_duration": 1_000_000 + sum(v for k, v in stats.items() if k.endswith("duration")),
             **stats}
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if reply.tool_calls and reply.tool_calls_in_final:
        message["tool_calls"] = _tool_calls(reply)
    return {"model": model, "created_at": _now(), "message": message,
            "done": True, "done_reason": reply.done_reason, **{k: v for k, v in stats.items() if v}}


def _details() -> dict[str, Any]:
    return {"parent_model": "", "format": "gguf", "family": "gptoss", "families": ["gptoss"],
            "parameter_size": "20.9B", "quantization_level": "MXFP4"}


def _model_entry(name: str) -> dict[str, Any]:
    return {"name": name, "model": name, "modified_at": "2025-08-10T12:00:00.000000Z",
            "size": 13_780_173_734, "digest": hashlib.sha256(name.encode()).hexdigest(),
            "details": _details()}


def _show_entry(name: str, tools: bool = True) -> dict[str, Any]:
    return {
        "modelfile": f"FROM {name}\nPARAMETER temperature 1\n",
        "parameters": "temperature                    1",
        "template": "{{- /* harmony template, abridged by the stand-in */ -}}<|start|>system<|message|>…",
        "details": _details(),
        "model_info": {"general.architecture": "gptoss", "general.parameter_count": 20_914_757_184,
                       "gptoss.context_length": CONTEXT_LENGTH},
        "capabilities": ["completion", "tools", "thinking"] if tools else ["completion", "thinking"],
        "modified_at": "2025-08-10T12:00:00.000000Z",
    }


OllamaStandIn.handler = _Handler
