"""``env.http``: outbound HTTP performed by the host, for allowed origins only.

The plan never opens a socket (the worker has no network at all); it asks the host,
which checks the URL against the grant, makes the request with its own client, caps the
reply's size and time, and retries transient failures (connection errors, 429, 5xx)
with tenacity. Redirects are not followed, so an allowed origin cannot bounce the call
to one that is not allowed.

A grant is a list of **origins** (scheme, host, port), not of host names: granting
``localhost`` for an API on port 8443 must not also open every other local service
(``http://localhost:9200/_admin``). An entry without a port means the scheme's default
port (443, or 80 for ``http``); an entry without a scheme means the schemes this
capability allows. The headers the host adds (API keys) are sent only to the origins
they were configured for, never to another allowed origin.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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


_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class _Origin:
    """One allowed origin: ``schemes`` (None: any the capability allows), a host or a
    ``*.`` pattern, and a port (None: the request scheme's default port)."""

    text: str
    schemes: frozenset[str] | None
    host: str
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> _Origin:
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"an allowed origin must be a non-empty string, got {entry!r}")
        text = entry.strip().lower()
        scheme: str | None = None
        if "://" in text:
            scheme, _, rest = text.partition("://")
            if scheme not in _DEFAULT_PORTS:
                raise ValueError(f"origin {entry!r}: the scheme must be https or http")
        else:
            rest = text
        if "/" in rest.rstrip("/") or "@" in rest or "?" in rest or "#" in rest:
            raise ValueError(f"origin {entry!r} must be scheme://host[:port] or host[:port], "
                             f"without a path, user or query")
        try:
            parts = urlsplit("//" + rest.rstrip("/"))
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"origin {entry!r} is not valid: {exc}") from None
        if not host:
            raise ValueError(f"origin {entry!r} names no host")
        return cls(text, None if scheme is None else frozenset({scheme}), host, port)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.schemes is not None and scheme not in self.schemes:
            return False
        if port != (self.port if self.port is not None else _DEFAULT_PORTS[scheme]):
            return False
        return self.host_matches(host)

    def host_matches(self, host: str) -> bool:
        if "*" in self.host:
            return fnmatch.fnmatchcase(host, self.host)
        return host == self.host


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | httpx2.TransportError)


class HttpCapability(Capability):
    """``get_json(url)``, ``get_text(url)``, ``post_json(url, body)``.

    Args:
        allow_hosts: the origins the plan may reach, each ``host``, ``host:port``,
            ``https://host`` or ``http://host:port``; ``*.example.com`` matches
            subdomains. Without a port an entry allows the scheme's default port only
            (443; 80 for http); without a scheme, the schemes allowed here. Nothing else
            is reachable.
        methods: HTTP methods allowed ("GET", "POST").
        max_bytes: the largest reply accepted (default 1 MiB).
        timeout: seconds per request.
        attempts: tries per call for transient failures.
        transport: an httpx2 transport (tests pass ``httpx2.MockTransport``).
        headers: headers the host adds (e.g. an API key the plan never sees). Either
            ``{"Authorization": ...}``, sent to every allowed origin, or keyed by
            origin, ``{"https://api.example.com": {"Authorization": ...}}``, each sent
            only to requests for that origin (use this form when several origins are
            allowed and only one should get the key).

    Raises:
        ValueError: an allowed origin, or a header's origin, is malformed, or a
            header's origin is not among the allowed ones.

    Example:
        >>> HttpCapability(["https://api.example.com", "localhost:8443"],  # doctest: +SKIP
        ...                headers={"https://api.example.com": {"Authorization": key}})
    """

    name = "http"
    methods = frozenset({"get_json", "get_text", "post_json"})

    def __init__(self, allow_hosts: Iterable[str], *, methods: Iterable[str] = ("GET", "POST"),
                 max_bytes: int = 1024 * 1024, timeout: float = 10.0, attempts: int = 3,
                 allow_http: bool = False, transport: httpx2.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | Mapping[str, Mapping[str, str]] | None = None
                 ) -> None:
        if isinstance(allow_hosts, str):
            allow_hosts = [allow_hosts]
        self._origins = [_Origin.parse(entry) for entry in allow_hosts]
        self.allow_hosts = [origin.text for origin in self._origins]
        self.http_methods = {m.upper() for m in methods}
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.attempts = attempts
        self.allow_http = allow_http
        self._transport = transport
        # [(origins the headers go to, headers)]: checked per request, never set on the
        # client, so no header reaches an origin it was not configured for.
        self._headers: list[tuple[list[_Origin], dict[str, str]]] = []
        given: dict[str, Any] = dict(headers or {})
        if given and all(isinstance(v, Mapping) for v in given.values()):
            for entry, values in given.items():
                origin = _Origin.parse(entry)
                if origin not in self._origins:
                    raise ValueError(f"headers are configured for origin {entry!r}, which "
                                     f"is not allowed: {self.allow_hosts}")
                self._headers.append(([origin], {str(k): str(v)
                                                 for k, v in values.items()}))
        elif given:
            if any(isinstance(v, Mapping) for v in given.values()):
                raise ValueError("headers must be {name: value} or {origin: {name: value}}, "
                                 "not a mix")
            self._headers.append((self._origins, {str(k): str(v)
                                                  for k, v in given.items()}))

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
        port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[parsed.scheme]
        if not any(o.matches(parsed.scheme, host, port) for o in self._origins):
            if any(o.host_matches(host) for o in self._origins):
                raise CapabilityError(
                    f"origin {parsed.scheme}://{host}:{port} is not in this agent's "
                    f"allowlist {self.allow_hosts} (an entry without a port allows the "
                    f"scheme's default port only)")
            raise CapabilityError(f"host {host!r} is not in this agent's allowlist "
                                  f"{self.allow_hosts}")
        return parsed

    def _headers_for(self, url: httpx2.URL) -> dict[str, str]:
        host = (url.host or "").lower()
        port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
        chosen: dict[str, str] = {}
        for origins, headers in self._headers:
            if any(o.matches(url.scheme, host, port) for o in origins):
                chosen.update(headers)
        return chosen

    async def _request(self, method: str, url: str, body: Any = None) -> bytes:
        target = self._check(method, url)
        async with httpx2.AsyncClient(transport=self._transport, timeout=self.timeout,
                                      follow_redirects=False) as client:
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
        headers = self._headers_for(url)
        if headers:
            kwargs["headers"] = headers
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
