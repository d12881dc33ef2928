"""``env.http``: outbound HTTP performed by the host, for allowed hosts only.

The plan never opens a socket (the worker has no network at all); it asks the host,
which checks the URL against the grant, makes the request with its own client, caps the
reply's size and time, and retries transient failures (connection errors, 429, 5xx)
with tenacity. Redirects are not followed, so an allowed host cannot bounce the call to
a host that is not allowed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Iterable
from typing import Any

import httpx2
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from agentflow.capabilities._base import Capability, CapabilityContext, CapabilityError


class _Transient(Exception):
    pass


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | httpx2.TransportError)


class HttpCapability(Capability):
    """``get_json(url)``, ``get_text(url)``, ``post_json(url, body)``.

    Args:
        allow_hosts: host names the plan may reach; ``*.example.com`` matches
            subdomains. Nothing else is reachable.
        methods: HTTP methods allowed ("GET", "POST").
        max_bytes: the largest reply accepted (default 1 MiB).
        timeout: seconds per request.
        attempts: tries per call for transient failures.
        transport: an httpx2 transport (tests pass ``httpx2.MockTransport``).
        headers: headers the host adds (e.g. an API key the plan never sees).
    """

    name = "http"
    methods = frozenset({"get_json", "get_text", "post_json"})

    def __init__(self, allow_hosts: Iterable[str], *, methods: Iterable[str] = ("GET", "POST"),
                 max_bytes: int = 1024 * 1024, timeout: float = 10.0, attempts: int = 3,
                 allow_http: bool = False, transport: httpx2.AsyncBaseTransport | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.allow_hosts = [h.lower() for h in allow_hosts]
        self.http_methods = {m.upper() for m in methods}
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.attempts = attempts
        self.allow_http = allow_http
        self._transport = transport
        self._headers = dict(headers or {})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "allow_hosts": self.allow_hosts,
                "http_methods": sorted(self.http_methods), "max_bytes": self.max_bytes}

    def _check(self, method: str, url: Any) -> httpx2.URL:
        if method not in self.http_methods:
            raise CapabilityError(f"HTTP {method} is not allowed for this agent; allowed: "
                                  f"{sorted(self.http_methods)}")
        if not isinstance(url, str):
            raise CapabilityError("the URL must be a string")
        try:
            parsed = httpx2.URL(url)
        except Exception:
            raise CapabilityError(f"not a valid URL: {url[:200]!r}") from None
        schemes = {"https", "http"} if self.allow_http else {"https"}
        if parsed.scheme not in schemes:
            raise CapabilityError(f"scheme {parsed.scheme!r} is not allowed; use "
                                  f"{' or '.join(sorted(schemes))}")
        host = (parsed.host or "").lower()
        if not any(fnmatch.fnmatchcase(host, pattern) if "*" in pattern else host == pattern
                   for pattern in self.allow_hosts):
            raise CapabilityError(f"host {host!r} is not in this agent's allowlist "
                                  f"{self.allow_hosts}")
        return parsed

    async def _request(self, method: str, url: str, body: Any = None) -> bytes:
        target = self._check(method, url)
        async with httpx2.AsyncClient(transport=self._transport, timeout=self.timeout,
                                      follow_redirects=False, headers=self._headers) as client:
            async for attempt in AsyncRetrying(
                    retry=retry_if_exception(_transient), reraise=True,
                    stop=stop_after_attempt(self.attempts),
                    wait=wait_random_exponential(multiplier=0.2, max=2.0)):
                with attempt:
                    try:  # httpx's timeout bounds each read; this bounds the request
                        async with asyncio.timeout(self.timeout):
                            return await self._once(client, method, target, body)
                    except TimeoutError:
                        raise _Transient(f"no complete reply from {target.host} within "
                                         f"{self.timeout:g} s") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, client: httpx2.AsyncClient, method: str, url: httpx2.URL,
                    body: Any) -> bytes:
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        async with client.stream(method, url, **kwargs) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Transient(f"HTTP {response.status_code} from {url.host}")
            if response.status_code >= 400:
                raise CapabilityError(f"HTTP {response.status_code} from {url.host}")
            if 300 <= response.status_code < 400:
                raise CapabilityError(f"HTTP {response.status_code} redirect from {url.host} "
                                      "is not followed")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise CapabilityError(f"the reply from {url.host} is over the limit of "
                                          f"{self.max_bytes:,} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

    async def do_get_text(self, ctx: CapabilityContext, url: str) -> str:
        return (await self._request("GET", url)).decode("utf-8", errors="replace")

    async def do_get_json(self, ctx: CapabilityContext, url: str) -> Any:
        return _json(await self._request("GET", url), url)

    async def do_post_json(self, ctx: CapabilityContext, url: str, body: Any = None) -> Any:
        raw = await self._request("POST", url, body)
        return _json(raw, url) if raw.strip() else None


def _json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise CapabilityError(f"the reply from {url[:200]} is not JSON") from None
