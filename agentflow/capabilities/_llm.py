"""``env.llm``: a completion through a client the host configured; the plan never sees
the key. Works with an `openai` or `anthropic` client (sync or async) without importing
either: the client object is handed in by the host."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from agentflow.capabilities._base import Capability, CapabilityContext, CapabilityError


def _transient(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    return (status in (408, 409, 429) or (isinstance(status, int) and status >= 500)
            or name in ("APIConnectionError", "APITimeoutError", "RateLimitError",
                        "InternalServerError", "OverloadedError"))


class LLMCapability(Capability):
    """``complete(prompt, max_tokens=1024, system=None)`` -> the model's text.

    Args:
        client: an ``openai.OpenAI``/``AsyncOpenAI`` or ``anthropic.Anthropic``/
            ``AsyncAnthropic`` client.
        model: the model name to use.
        max_tokens: the cap a plan cannot raise.
        attempts: tries for transient failures (rate limits, 5xx, connection errors).
    """

    name = "llm"
    methods = frozenset({"complete"})

    def __init__(self, client: Any, model: str, *, max_tokens: int = 4096,
                 attempts: int = 3) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens
        self.attempts = attempts

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model, "max_tokens": self.max_tokens}

    async def do_complete(self, ctx: CapabilityContext, prompt: str, max_tokens: int = 1024,
                          system: str | None = None) -> str:
        if not isinstance(prompt, str) or not prompt:
            raise CapabilityError("llm.complete(prompt): prompt must be a non-empty string")
        limit = min(int(max_tokens), self.max_tokens)
        async for attempt in AsyncRetrying(retry=retry_if_exception(_transient), reraise=True,
                                           stop=stop_after_attempt(self.attempts),
                                           wait=wait_random_exponential(multiplier=0.5, max=8)):
            with attempt:
                return await self._complete(prompt, limit, system)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _complete(self, prompt: str, max_tokens: int, system: str | None) -> str:
        client = self.client
        if hasattr(client, "messages"):  # Anthropic Messages
            kwargs: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens,
                                      "messages": [{"role": "user", "content": prompt}]}
            if system:
                kwargs["system"] = system
            reply = await _call(client.messages.create, **kwargs)
            return "".join(getattr(b, "text", "") for b in reply.content)
        if hasattr(client, "chat"):  # OpenAI Chat Completions
            messages = ([{"role": "system", "content": system}] if system else [])
            messages.append({"role": "user", "content": prompt})
            reply = await _call(client.chat.completions.create, model=self.model,
                                messages=messages, max_tokens=max_tokens)
            return str(reply.choices[0].message.content or "")
        raise CapabilityError("the host's llm client is neither an OpenAI nor an Anthropic "
                              "client")


async def _call(fn: Any, **kwargs: Any) -> Any:
    """Await an async client's call; run a sync client's call off the event loop."""
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = await asyncio.to_thread(fn, **kwargs)
    return await result if inspect.isawaitable(result) else result
