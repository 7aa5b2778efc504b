"""Any OpenAI-compatible chat server (vLLM, LM Studio, llama.cpp's server) behind the ChatModel interface.

The wire format is `POST {base}/chat/completions` with `stream: true`: server-sent events, one
`data: {json}` line per chunk and `data: [DONE]` at the end. Reasoning models send their reasoning apart
from the answer, in `delta.reasoning_content` (vLLM, llama.cpp) or `delta.reasoning` (newer vLLM, LM Studio).
Every failure leaves this module as one LLMError whose message names the setting that fixes it.

Tools: `tools: [{"type": "function", "function": {name, description, parameters}}]` with Archivist's plain
names (OpenAI-style names allow only letters, digits, `_` and `-`); calls stream as `delta.tool_calls` pieces
gathered by `index` (the first piece has `id` and `function.name`, `function.arguments` is a JSON string
sent in fragments); results go back as `{"role": "tool", "tool_call_id", "content"}`. The assistant's
reasoning between tool calls goes back as `reasoning_content` (what llama.cpp's server reads) and
`reasoning` (what vLLM's harmony input parser reads for gpt-oss); servers ignore fields they do not know.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from rag.errors import LLMError, LLMResponseError, LLMTimeout, LLMUnavailable, ModelMissing, ToolsUnsupported
from rag.llm.chat import (
    INCOMPLETE,
    ChatModel,
    Delta,
    IdleCloser,
    Message,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
)
from rag.records import Effort
from rag.settings import Settings

logger = logging.getLogger(__name__)

_MAX_QUOTED = 500  # characters of a server's error text worth showing to a person


class OpenAIChat(ChatModel):
    """A model on an OpenAI-compatible server, streamed with httpx."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.model = settings.model
        self.base_url = settings.openai_base_url.strip().rstrip("/")
        self.where = self.base_url
        headers = {"Accept": "text/event-stream, application/json"}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        self._client = httpx.Client(headers=headers, timeout=settings.llm_timeout_s, transport=transport)
        self._closer = IdleCloser(self._client.close)

    def close(self) -> None:
        """Close the connections once the replies still streaming have ended."""
        self._closer.close()

    def request_body(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> dict[str, Any]:
        """The JSON sent for one reply; the context size is the server's to set, so it is not sent."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(message) for message in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "reasoning_effort": effort,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "max_tokens": self.settings.num_predict,
        }
        if tools:
            body["tools"] = [
                {"type": "function",
                 "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters}}
                for tool in tools
            ]
        return body

    def check(self) -> None:
        url = f"{self.base_url}/models"
        with self._transport_errors():
            response = self._client.get(url)
        if response.is_error:
            raise self._http_error(response.status_code, response.text, url)
        served = _model_ids(_json_or_none(response.text))
        # A server that serves exactly one model (llama.cpp's server, LM Studio with one model loaded) answers
        # every request with it, whatever name the request gives, and names it after its file unless started
        # with --alias: refusing here would make people rename things for nothing. A strict single-model
        # server (vLLM) still refuses a wrong name on the request itself, which becomes ModelMissing there.
        if len(served) > 1 and self.model not in served:
            raise self._missing(served)
        if served and self.model not in served:
            logger.info("%s serves only %s; using it for %s", self.where, served[0], self.model)

    def stream(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> Iterator[StreamEvent]:
        url = f"{self.base_url}/chat/completions"
        body = self.request_body(messages, effort, tools)
        logger.debug("POST %s model=%s effort=%s messages=%d tools=%d", url, self.model, effort, len(messages),
                     len(tools))
        with self._closer.streaming(), self._transport_errors(), \
                self._client.stream("POST", url, json=body) as response:
            if response.is_error:
                response.read()
                raise self._http_error(response.status_code, response.text, url, bool(tools))
            yield from self._events(response.iter_lines())

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """httpx's failures to reach or hear from the server, as the LLMError that says what to do."""
        try:
            yield
        except httpx.ConnectError:
            raise self._unavailable() from None
        except httpx.TimeoutException:
            raise self._timeout() from None
        except httpx.HTTPError as error:
            raise self._broken(error) from None

    def _events(self, lines: Iterator[str]) -> Iterator[StreamEvent]:
        """Turn SSE lines into Deltas, then exactly one Usage."""
        finish_reason: str | None = None
        usage: dict[str, Any] = {}
        calls: dict[int, _PartialCall] = {}
        done = False
        event = ""
        for line in lines:
            if not line:
                event = ""  # a blank line ends an event
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
                continue
            if field != "data":
                continue  # comments (":") and ids carry nothing for us
            if value.strip() == "[DONE]":
                done = True
                break
            payload = _json_or_none(value)
            if not isinstance(payload, dict):
                raise LLMResponseError(
                    f"The server at {self.where} sent a stream line that is not JSON: {_clip(value)!r}"
                )
            if event == "error" or payload.get("error") or payload.get("object") == "error":
                raise self._stream_error(payload)
            if isinstance(payload.get("usage"), dict):
                usage = payload["usage"]
            choices = payload.get("choices") or []
            choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
            if choice is None:
                continue
            delta = choice.get("delta") or {}
            # vLLM's transition releases send the same text under both names; take one, never both.
            thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
            content = delta.get("content") or ""
            if thinking or content:
                yield Delta(thinking=str(thinking), content=str(content))
            for piece in delta.get("tool_calls") or []:
                if isinstance(piece, dict):
                    index = piece.get("index")
                    calls.setdefault(index if isinstance(index, int) else len(calls), _PartialCall()).add(piece)
            if choice.get("finish_reason"):
                finish_reason = str(choice["finish_reason"])
        if not done and finish_reason is None:
            # Cut off (stopped, out of memory): keep what came, and say so through the Usage, as for Ollama.
            logger.warning("the server at %s ended a reply before finishing it", self.where)
        # A call's arguments are whole only once the stream has ended; a cut-off call fails to parse and is
        # answered as a tool error.
        for index in sorted(calls):
            yield calls[index].finished(index)
        yield Usage(
            _int_or_none(usage.get("prompt_tokens")),
            _int_or_none(usage.get("completion_tokens")),
            INCOMPLETE if not done and finish_reason is None else "length" if finish_reason == "length" else "stop",
        )

    def _http_error(self, status: int, text: str, url: str, offered_tools: bool = False) -> LLMError:
        """One HTTP error status, with the server's own words, translated to the error that says what to do."""
        payload = _json_or_none(text)
        message = _error_message(payload) or _clip(text.strip()) or httpx.codes.get_reason_phrase(status)
        message = message.rstrip(". ")
        if _is_model_missing(status, payload, message):
            return self._missing(self._served_models(), message)
        if offered_tools and "tool" in message.lower():
            # vLLM without --enable-auto-tool-choice --tool-call-parser (400), llama.cpp's server with --no-jinja
            # (500 "tools param requires --jinja flag"), or any other refusal that names tools.
            return ToolsUnsupported(
                f"The server at {self.where} does not take tools ({status}: {message}), so research mode is not "
                "available with it; questions are answered in one step from the passages found first. "
                "To enable it: vLLM needs --enable-auto-tool-choice --tool-call-parser openai; "
                "llama.cpp's server needs --jinja."
            )
        if status in (401, 403):
            return LLMResponseError(
                f"The server at {self.where} refused the request ({status}): {message}. "
                "Set ARCHIVIST_OPENAI_API_KEY to the key it expects."
            )
        if status == 404:
            return LLMResponseError(
                f"The server at {self.where} has no {url} ({status}: {message}). "
                "ARCHIVIST_OPENAI_BASE_URL must be the API's base, up to and including /v1 "
                "(e.g. http://127.0.0.1:8000/v1)."
            )
        hint = ""
        if "context" in message.lower():
            hint = (
                " The prompt does not fit the server's context window: start the server with a larger one "
                "(llama.cpp: --ctx-size; vLLM: --max-model-len), or set ARCHIVIST_NUM_CTX to at most its size."
            )
        return LLMResponseError(f"The server at {self.where} answered {status}: {message}.{hint}")

    def _stream_error(self, payload: dict[str, Any]) -> LLMError:
        message = _error_message(payload) or _clip(json.dumps(payload))
        return LLMResponseError(f"The server at {self.where} failed while answering: {message}")

    def _served_models(self) -> list[str]:
        """What the server says it serves, to name in an error; empty if it will not say."""
        try:
            response = self._client.get(f"{self.base_url}/models")
        except httpx.HTTPError:
            return []
        return [] if response.is_error else _model_ids(_json_or_none(response.text))

    def _unavailable(self) -> LLMUnavailable:
        return LLMUnavailable(
            f"No OpenAI-compatible server is reachable at {self.where}. Start one there (for example "
            f"`vllm serve {self.model}`, LM Studio's local server, or llama.cpp's `llama-server -m model.gguf`), "
            "or set ARCHIVIST_OPENAI_BASE_URL to where it runs, up to and including /v1 "
            "(ARCHIVIST_LLM=ollama goes back to Ollama)."
        )

    def _missing(self, served: list[str], detail: str = "") -> ModelMissing:
        said = f" ({detail})" if detail else ""
        if served:
            listed = ", ".join(served[:20]) + (", …" if len(served) > 20 else "")
            fix = f"It serves: {listed}. Set ARCHIVIST_MODEL to one of them, or start the server with {self.model}."
        else:
            fix = f"Start the server with {self.model}, or set ARCHIVIST_MODEL to the name the server uses."
        return ModelMissing(f"The server at {self.where} does not serve the model {self.model}{said}. {fix}")

    def _timeout(self) -> LLMTimeout:
        return LLMTimeout(
            f"The server at {self.where} did not answer within {self.settings.llm_timeout_s:g} s. "
            "It may still be loading the model, or be busy: try again, or raise ARCHIVIST_LLM_TIMEOUT_S."
        )

    def _broken(self, error: httpx.HTTPError) -> LLMResponseError:
        reason = str(error) or type(error).__name__
        return LLMResponseError(f"The connection to the server at {self.where} failed: {reason}")


class _PartialCall:
    """One tool call as its pieces stream in: `id` and `function.name` first, then `function.arguments` as
    fragments of a JSON string."""

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def add(self, piece: dict[str, Any]) -> None:
        self.id = self.id or str(piece.get("id") or "")
        function = piece.get("function") or {}
        if isinstance(function, dict):
            self.name = self.name or str(function.get("name") or "")
            if isinstance(function.get("arguments"), str):
                self.arguments.append(function["arguments"])
            elif isinstance(function.get("arguments"), dict):  # a server that sends the object itself
                self.arguments.append(json.dumps(function["arguments"]))

    def finished(self, index: int) -> ToolCall:
        # The result goes back by id, so a call always has one (some servers send none).
        self.id = self.id or f"call_{index}"
        text = "".join(self.arguments).strip() or "{}"  # a call without arguments may send none at all
        try:
            arguments = json.loads(text)
        except ValueError as error:
            return ToolCall(self.name, {}, self.id, f"the arguments are not valid JSON ({error}): {_clip(text)}")
        if not isinstance(arguments, dict):
            return ToolCall(self.name, {}, self.id, f"the arguments are not a JSON object: {_clip(text)}")
        return ToolCall(self.name, arguments, self.id)


def _wire_message(message: Message) -> dict[str, Any]:
    """A neutral message (rag/llm/chat.py) in the chat-completions form; messages without tool parts go as
    they are."""
    if message.get("role") == "tool":
        return {"role": "tool", "tool_call_id": str(message.get("call_id") or ""),
                "content": message.get("content") or ""}
    calls = message.get("tool_calls")
    if not calls:
        return {key: value for key, value in message.items() if key != "tool_calls"}
    wire: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    thinking = message.get("thinking") or ""
    if thinking:
        wire["reasoning_content"] = wire["reasoning"] = thinking
    wire["tool_calls"] = [
        {"id": call.id, "type": "function",
         "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}}
        for call in calls
    ]
    return wire


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _error_message(payload: Any) -> str:
    """The human part of an error body in any of the shapes servers use:
    `{"error": {"message": …}}` (OpenAI, llama.cpp, vLLM), `{"error": "…"}` (Ollama),
    `{"object": "error", "message": …}` (older vLLM), `{"detail": …}` (FastAPI)."""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if isinstance(error, dict):
        return _clip(str(error.get("message") or error.get("type") or json.dumps(error)))
    if isinstance(error, str):
        return _clip(error)
    for key in ("message", "detail"):
        if payload.get(key):
            return _clip(str(payload[key]))
    return ""


def _is_model_missing(status: int, payload: Any, message: str) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    code = str(error.get("code") or "") if isinstance(error, dict) else ""
    if code == "model_not_found":
        return True
    text = message.lower()
    return status in (400, 404) and "model" in text and ("not found" in text or "does not exist" in text)


def _model_ids(payload: Any) -> list[str]:
    data = payload.get("data") if isinstance(payload, dict) else None
    return [str(item["id"]) for item in data or [] if isinstance(item, dict) and item.get("id")]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "…"
