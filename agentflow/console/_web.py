"""The console's web plumbing: configuration, the security headers every response
carries, templates (Jinja2, autoescaped) and the sign-in and CSRF check every route
goes through (`signed_in`)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentflow._text import printable
from agentflow.console import _data
from agentflow.console._auth import Operator, Session, Signer, SignInLimit, SignInLimiter
from agentflow.models import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentflow.plans import AgentFlow

__all__ = ["ACTIONS", "COOKIE", "HERE", "STATUSES", "Console", "ConsoleConfig", "Handler",
           "SecurityHeaders", "field_of", "signed_in"]
HERE = Path(__file__).parent
COOKIE = "agentflow_session"
STATUSES = sorted(ACTIVE_STATUSES | TERMINAL_STATUSES | {"paused"})
ACTIONS = ("pause", "resume", "terminate", "restart")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class ConsoleConfig:
    """How the console admits people and what it treats as a person's decision.

    Attributes:
        operators: who may sign in (see `Operator`); none means nobody can.
        secret: the HMAC key for sessions and approval links (at least 32 bytes).
            None: a random one is kept in the database, so that every ``serve``
            process on it accepts the same sessions and links.
        human_only: event types, besides ``approval``, that only a person may send.
        session_seconds: how long a sign-in lasts.
        link_seconds: how long an approval link works, by default.
        secure_cookies: mark the session cookie ``Secure`` (set it when served over
            HTTPS, directly or behind a proxy).
        public_url: the URL people reach the console at, for approval links (None:
            the URL of the request that made the link).
        sign_in_limit: how many failed sign-ins are taken, per client address and
            overall, before the console answers ``429`` for a while (`SignInLimit`).
    """

    operators: list[Operator] = field(default_factory=list)
    secret: bytes | None = None
    human_only: frozenset[str] = frozenset()
    session_seconds: float = 12 * 3600
    link_seconds: float = 24 * 3600
    secure_cookies: bool = False
    public_url: str | None = None
    sign_in_limit: SignInLimit = field(default_factory=SignInLimit)


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)

    def shown(value: Any) -> str:
        return printable(str(value))

    def shown_lines(value: Any) -> str:
        return "\n".join(printable(line) for line in str(value).split("\n"))

    @jinja2.pass_context
    def path_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
        """A site-relative URL (``url_for`` makes absolute ones, which name the host the
        request came to: wrong behind a reverse proxy)."""
        request: Request = context["request"]
        return str(request.scope.get("root_path", "")) + str(
            request.app.url_path_for(name, **params))

    def as_json(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    env.filters["as_json"] = as_json
    env.filters["shown"] = shown
    env.filters["shown_lines"] = shown_lines
    env.globals["path_for"] = path_for
    return Jinja2Templates(env=env)


class Console:
    """The state behind the routes: the flow, the configuration, the signer."""

    def __init__(self, flow: AgentFlow, config: ConsoleConfig) -> None:
        self.flow = flow
        self.config = config
        self.templates = _templates()
        self._extra_human_only = config.human_only
        self._signer: Signer | None = Signer(config.secret) if config.secret else None
        self._signer_lock = asyncio.Lock()
        self._by_token = {o.token: o for o in config.operators}
        # The engine's clock: a test's ManualClock moves it; it only ever goes forward.
        self.sign_ins = SignInLimiter(config.sign_in_limit, flow.engine.clock.now)

    async def human_only(self) -> frozenset[str]:
        """The human-only event types now: the database's policy and this console's."""
        return await _data.human_only_now(self.flow, self._extra_human_only)

    async def signer(self) -> Signer:
        if self._signer is None:
            async with self._signer_lock:
                if self._signer is None:
                    self._signer = Signer(await self._stored_secret())
        return self._signer

    async def _stored_secret(self) -> bytes:
        return await _data.stored_secret(self.flow.engine.store,
                                         self.flow.engine.clock.now())

    def operator(self, token: str) -> Operator | None:
        for known, operator in self._by_token.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return operator
        return None

    # -- rendering ---------------------------------------------------------------------
    def page(self, request: Request, template: str, session: Session | None,
             status_code: int = 200, **context: Any) -> Response:
        context.setdefault("notices", [])
        # The feed's position when the page's data was read: the live stream starts
        # there, so a change made between reading and connecting is not missed.
        context.setdefault("cursor", getattr(request.state, "cursor", 0))
        return self.templates.TemplateResponse(
            request, template, {"session": session, **context}, status_code=status_code)

    def message(self, request: Request, session: Session | None, heading: str, text: str,
                *, status_code: int, kind: str = "error", back: str | None = None
                ) -> Response:
        return self.page(request, "message.html", session, status_code=status_code,
                         heading=heading, text=text, kind=kind, back=back)


Handler = Callable[[Request, Console, Session], Awaitable[Response]]


def signed_in(handler: Handler, *, acts: bool = False) -> Callable[[Request],
                                                                   Awaitable[Response]]:
    """Wrap a route: a session is required (GET: sent to sign in; else 401); an action
    also needs the operator role and the session's CSRF token in its form."""

    async def endpoint(request: Request) -> Response:
        console: Console = request.app.state.console
        session = (await console.signer()).session(request.cookies.get(COOKIE))
        if session is None:
            if request.method == "GET":
                target = request.url.path + (f"?{request.url.query}" if request.url.query
                                             else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
            return console.message(request, None, "Not signed in",
                                   "Sign in first; nothing was done.", status_code=401)
        if request.method == "POST":
            form = await request.form()
            sent = form.get("csrf")
            if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
                return console.message(
                    request, session, "Refused",
                    "This form's CSRF token is missing or wrong, so nothing was done. "
                    "Reload the page and try again.", status_code=403)
            if acts and not session.can_act:
                return console.message(request, session, "Read-only",
                                       "Your role is read-only; nothing was done.",
                                       status_code=403)
        if request.method == "GET":
            request.state.cursor = await console.flow.engine.store.last_change()
        return await handler(request, console, session)

    return endpoint


def field_of(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
