"""Ollama's native chat API (`/api/chat`, streamed NDJSON): the default backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from rag.errors import LLMError, LLMResponseError, LLMTimeout, LLMUnavailable, ModelMissing
from rag.llm.chat import INCOMPLETE, ChatModel, Delta, IdleCloser, Message, StreamEvent, ToolSpec, Usage, logger
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

    def stream(
        self, messages: Sequence[Message], effort: Effort, tools: Sequence[ToolSpec] = ()
    ) -> Iterator[StreamEvent]:
        import ollama

        try:
            with self._closer.streaming():
                chunks = self._client.chat(
                    model=self.model, messages=list(messages), stream=True, think=effort,
                    options=self.options(), keep_alive="10m",
                )
                for chunk in chunks:
                    message = chunk.message
                    if message.thinking or message.content:
                        yield Delta(thinking=message.thinking or "", content=message.content or "")
                    if chunk.done:
                        yield Usage(chunk.prompt_eval_count, chunk.eval_count, chunk.done_reason)
                        return
            # The server closed the stream without its final `done` chunk (stopped, out of memory): every
            # stream still ends with a Usage, so the answer can say it was cut short.
            logger.warning("Ollama at %s ended a reply without its final chunk", self.where)
            yield Usage(None, None, INCOMPLETE)
        except ollama.ResponseError as error:
            raise self._translate(error) from None
        except (httpx.ConnectError, ConnectionError):
            raise self._unavailable() from None
        except httpx.TimeoutException:
            raise LLMTimeout(
                f"Ollama at {self.where} did not answer within {self.settings.llm_timeout_s:.0f} s. "
                "It may still be loading the model: try again, or raise ARCHIVIST_LLM_TIMEOUT_S."
            ) from None
        except httpx.HTTPError as error:
            raise LLMResponseError(f"The connection to Ollama at {self.where} failed: {error}") from None

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

    def _translate(self, error: Any) -> LLMError:
        text = str(getattr(error, "error", error))
        if error.status_code == 404 and "not found" in text.lower():
            return self._missing()
        return LLMResponseError(f"Ollama at {self.where} reported an error: {text}")
