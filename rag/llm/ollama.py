"""Ollama's native chat API (`/api/chat`, streamed NDJSON): the default backend.

Tools go over the wire as Ollama takes them: `tools: [{"type": "function", "function": {name, description,
parameters}}]` on the request, `message.tool_calls: [{"function": {"name", "arguments": {...}}}]` in the
reply (arguments an object; with gpt-oss the harmony parser emits the one call in the final chunk), results
as `{"role": "tool", "tool_name", "content"}`. For gpt-oss, Ollama passes the names `browser.search`,
`browser.open`, `browser.find` and `python` through to the model's built-in tools (harmony/harmonyparser.go,
FunctionNameMap.ConvertAndAdd), so a ToolSpec's `trained_name` is offered when it has one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from rag.errors import (
    LLMError,
    LLMResponseError,
    LLMTimeout,
    LLMUnavailable,
    MalformedToolCall,
    ModelMissing,
    ToolsUnsupported,
)
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
    logger,
)
from rag.records import Effort
from rag.settings import Settings

# What `ollama pull` downloads for the models Archivist is made for (Ollama's library pages), to set
# expectations in the message that asks for it; other models' sizes are not guessed.
DOWNLOAD_SIZES = {"gpt-oss:20b": "14 GB", "gpt-oss": "14 GB", "gpt-oss:120b": "65 GB"}


class OllamaChat(ChatModel):
    """gpt-oss through Ollama's /api/chat, with the official client."""

    def __init__(self, settings: Settings) -> None:
        import ollama

        self.settings = settings
        self.model = settings.model
        self.where = settings.ollama_host
        self._client = ollama.Client(host=settings.ollama_host, timeout=settings.llm_timeout_s)
        self._closer = IdleCloser(self._client.close)  # closes its httpx.Client
        self._tools_supported: bool | None = None  # what /api/show said, asked once
        # Every trained name a ToolSpec ever brought, so earlier calls in a conversation keep the name the model
        # used even on a request that offers no tools any more (the research loop's last one).
        self._trained_names: dict[str, str] = {}

    def close(self) -> None:
        self._closer.close()

    def options(self) -> dict[str, Any]:
        # num_ctx on every request: Ollama's default (4k-8k) would silently truncate the sources.
        return {
            "num_ctx": self.settings.num_ctx,
            "num_predict": self.settings.num_predict,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
        }

    def check(self) -> None:
        import ollama

        try:
            installed = {model.model for model in self._client.list().models}
        except ollama.ResponseError as error:
            raise self._translate(error) from None
        except (httpx.ConnectError, ConnectionError):
            raise self._unavailable() from None
        except httpx.HTTPError as error:
            raise LLMResponseError(f"The connection to Ollama at {self.where} failed: {error}") from None
        if self.model not in installed and f"{self.model}:latest" not in installed:
            raise self._missing()

    def request_body(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> dict[str, Any]:
        """The JSON for one /api/chat request, made the way `ollama.Client.chat` makes it (so a request without
        tools is byte for byte what the client sends), except that `tools` go as given: the client's Tool
        model keeps only `type`, `description`, `items` and `enum` of each parameter and drops nested objects'
        `properties`, which Ollama itself keeps (api.ToolProperty)."""
        from ollama._types import ChatRequest  # the client's own request model (not re-exported by the package)

        names = self._names(tools)
        body: dict[str, Any] = ChatRequest(
            model=self.model, messages=[_wire_message(message, names) for message in messages], tools=[],
            stream=True, think=effort, options=self.options(), keep_alive="10m",
        ).model_dump(exclude_none=True)
        if tools:
            body["tools"] = [
                {"type": "function", "function": {"name": names.wire(tool.name), "description": tool.description,
                                                  "parameters": tool.parameters}}
                for tool in tools
            ]
        return body

    def stream(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> Iterator[StreamEvent]:
        import ollama

        names = self._names(tools)
        body = self.request_body(messages, effort, tools)
        try:
            with self._closer.streaming():
                # The client's own request and error handling, with the chunks as plain dicts: its ChatResponse
                # model would refuse a chunk whose tool-call arguments are not an object before we could say so.
                chunks: Iterator[dict[str, Any]] = self._client._request(
                    dict, "POST", "/api/chat", json=body, stream=True
                )
                calls: list[ToolCall] = []
                for chunk in chunks:
                    message = chunk.get("message") or {}
                    thinking, content = message.get("thinking") or "", message.get("content") or ""
                    if thinking or content:
                        yield Delta(thinking=str(thinking), content=str(content))
                    # Calls may come in any chunk (gpt-oss's parser puts its one call in the final chunk).
                    calls.extend(_tool_call(raw, names) for raw in message.get("tool_calls") or [])
                    if chunk.get("done"):
                        yield from calls
                        yield Usage(_int_or_none(chunk.get("prompt_eval_count")),
                                    _int_or_none(chunk.get("eval_count")), chunk.get("done_reason"))
                        return
                # The server closed the stream without its final `done` chunk (stopped, out of memory): every
                # stream still ends with a Usage, so the answer can say it was cut short. Calls that came are
                # kept; a cut-off call never arrives (Ollama parses a call only when the model's message ends).
                logger.warning("Ollama at %s ended a reply without its final chunk", self.where)
                yield from calls
                yield Usage(None, None, INCOMPLETE)
        except ollama.ResponseError as error:
            raise self._translate(error, tools) from None
        except (httpx.ConnectError, ConnectionError):
            raise self._unavailable() from None
        except httpx.TimeoutException:
            raise LLMTimeout(
                f"Ollama at {self.where} did not answer within {self.settings.llm_timeout_s:.0f} s. "
                "It may still be loading the model: try again, or raise ARCHIVIST_LLM_TIMEOUT_S."
            ) from None
        except httpx.HTTPError as error:
            raise LLMResponseError(f"The connection to Ollama at {self.where} failed: {error}") from None

    def _names(self, tools: Sequence[ToolSpec]) -> _WireNames:
        self._trained_names.update({tool.name: tool.trained_name for tool in tools if tool.trained_name})
        return _WireNames(self._trained_names)

    def supports_tools(self) -> bool:
        """Whether /api/show lists "tools" among the model's capabilities; asked once per instance. When the
        server cannot be asked (down, an old version without capabilities) the answer is True: a request with
        tools then says for sure (ToolsUnsupported), and research mode falls back to one shot."""
        if self._tools_supported is None:
            self._tools_supported = self._ask_tools_capability()
        return self._tools_supported

    def _ask_tools_capability(self) -> bool:
        import ollama

        try:
            shown = self._client.show(self.model)
        # Any failure to ask means "not known": assume yes (ValueError: a reply the client could not read).
        except (ollama.ResponseError, httpx.HTTPError, ConnectionError, ValueError) as error:
            logger.info("could not ask Ollama at %s about %s's capabilities: %s", self.where, self.model, error)
            return True
        capabilities = getattr(shown, "capabilities", None)
        if capabilities is None:  # a server older than capabilities in /api/show (before 0.6.4)
            return True
        return "tools" in capabilities

    def _unavailable(self) -> LLMUnavailable:
        return LLMUnavailable(
            f"Ollama is not reachable at {self.where}. Start it with `ollama serve` "
            f"(or set OLLAMA_HOST to where it runs), and `ollama pull {self.model}` if you have not yet."
        )

    def _missing(self) -> ModelMissing:
        size = DOWNLOAD_SIZES.get(self.model.removesuffix(":latest"))
        return ModelMissing(
            f"Ollama at {self.where} does not have the model {self.model}. "
            f"Download it with `ollama pull {self.model}`" + (f" (about {size})." if size else ".")
        )

    def _translate(self, error: Any, tools: Sequence[ToolSpec] = ()) -> LLMError:
        text = str(getattr(error, "error", error))
        lowered = text.lower()
        if error.status_code == 404 and "not found" in lowered:
            return self._missing()
        if tools and "does not support tools" in lowered:
            # server/routes.go: CheckCapabilities → HTTP 400 "<model> does not support tools"
            self._tools_supported = False
            return ToolsUnsupported(
                f"The model {self.model} on Ollama at {self.where} cannot use tools ({text}), so research mode "
                "is not available with it; questions are answered in one step from the passages found first."
            )
        if "error parsing tool call" in lowered:
            # harmony/harmonyparser.go: the model's call was not JSON. HTTP 500 before any chunk was sent, an
            # error line (status -1) after the reasoning had started to stream.
            return MalformedToolCall(
                f"Ollama at {self.where} could not read the tool call {self.model} wrote: {_clip(text)}"
            )
        return LLMResponseError(f"Ollama at {self.where} reported an error: {text}")


class _WireNames:
    """The names the tools go by on this wire (the trained name when a ToolSpec has one), and back."""

    def __init__(self, trained_names: dict[str, str]) -> None:
        self._to_wire = dict(trained_names)
        self._from_wire = {wire: name for name, wire in trained_names.items()}

    def wire(self, name: str) -> str:
        return self._to_wire.get(name, name)

    def ours(self, wire_name: str) -> str:
        # A name nobody offered stays as the model wrote it; the research loop answers it as an unknown tool.
        return self._from_wire.get(wire_name, wire_name)


def _wire_message(message: Message, names: _WireNames) -> Any:
    """A neutral message (rag/llm/chat.py) in Ollama's form, checked by the client's Message model (which keeps
    role, content, thinking, tool_calls' function name and arguments, and tool_name)."""
    import ollama

    if message.get("role") == "tool":
        wire: dict[str, Any] = {"role": "tool", "tool_name": names.wire(str(message.get("name") or "")),
                                "content": message.get("content") or ""}
    elif message.get("tool_calls"):
        wire = {key: value for key, value in message.items() if key != "tool_calls"}
        wire["tool_calls"] = [{"function": {"name": names.wire(call.name), "arguments": dict(call.arguments)}}
                              for call in message["tool_calls"]]
    else:
        wire = dict(message)
    # As ollama.Client.chat does: empty fields are left out, the rest validated.
    return ollama.Message.model_validate({key: value for key, value in wire.items() if value})


def _tool_call(raw: Any, names: _WireNames) -> ToolCall:
    function = (raw.get("function") if isinstance(raw, dict) else None) or {}
    name = names.ours(str(function.get("name") or ""))
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        return ToolCall(name, arguments)
    return ToolCall(name, {}, arguments_error=f"the arguments are not a JSON object: {_clip(repr(arguments))}")


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
