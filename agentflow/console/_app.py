"""The console's Starlette application: pages, actions, the live event stream.

Pages are rendered on the server (Jinja2, autoescaped). The only script is
``static/live.js``: it listens to ``/events`` (server-sent events from the change feed)
and re-fetches the page when something changed. Every response forbids framing and
inline script (a Content-Security-Policy), and sends no referrer (approval links carry
their token in the URL).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentflow._text import printable
from agentflow.agents import AgentFlow
from agentflow.console import _data
from agentflow.console._auth import LinkClaims, Operator, Session, Signer
from agentflow.errors import AgentflowError, InvalidStateError, NotFoundError
from agentflow.models import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentflow.tools import (
    ApprovalRequest,
    HumanAnswer,
    HumanDecision,
    ToolContext,
    call_tool,
)

__all__ = ["ConsoleConfig", "create_app"]

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
    """

    operators: list[Operator] = field(default_factory=list)
    secret: bytes | None = None
    human_only: frozenset[str] = frozenset()
    session_seconds: float = 12 * 3600
    link_seconds: float = 24 * 3600
    secure_cookies: bool = False
    public_url: str | None = None


class _SecurityHeaders:
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
        self.human_only = _data.human_only_types(config.human_only)
        self._signer: Signer | None = Signer(config.secret) if config.secret else None
        self._signer_lock = asyncio.Lock()
        self._by_token = {o.token: o for o in config.operators}

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


def _signed_in(handler: Handler, *, acts: bool = False) -> Callable[[Request],
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


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# -- sign in and out ---------------------------------------------------------------------
async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    next_url = request.query_params.get("next", "/instances")
    if request.method == "GET":
        return console.page(request, "login.html", None, next=_local(next_url), error=None)
    form = await request.form()
    operator = console.operator(_field(form, "token"))
    target = _local(_field(form, "next"))
    if operator is None:
        return console.page(request, "login.html", None, status_code=401, next=target,
                            error="That token is not an operator's token.")
    _, cookie = (await console.signer()).new_session(
        operator, lifetime=console.config.session_seconds)
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, cookie, max_age=int(console.config.session_seconds),
                        httponly=True, samesite="strict",
                        secure=console.config.secure_cookies, path="/")
    return response


def _local(target: str) -> str:
    """Only a path on this site (no scheme, no host, no "//"): no open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/instances"
    return target


async def logout(request: Request, console: Console, session: Session) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- pages -------------------------------------------------------------------------------
async def instances(request: Request, console: Console, session: Session) -> Response:
    q = request.query_params
    filters = {k: (q.get(k) or None) for k in ("agent", "plan", "status", "before")}
    if filters["status"] not in (None, *STATUSES):
        filters["status"] = None
    items, next_cursor = await _data.instances_page(
        console.flow, agent=filters["agent"], plan=filters["plan"],
        status=filters["status"], before=filters["before"])
    base = {k: v for k, v in filters.items() if v and k != "before"}
    next_url = (f"/instances?{urlencode({**base, 'before': next_cursor})}"
                if next_cursor else None)
    first_url = f"/instances?{urlencode(base)}"
    return console.page(request, "instances.html", session, items=items, filters=filters,
                        statuses=STATUSES, next_url=next_url, first_url=first_url)


async def instance(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    try:
        detail = await _data.instance_detail(console.flow, instance_id, console.human_only)
    except NotFoundError:
        return console.message(request, session, "Not found",
                               f"No instance has the id {instance_id!r}.", status_code=404,
                               back="/instances")
    notices = [n for n in request.query_params.getlist("notice") if n in _NOTICES]
    return console.page(request, "instance.html", session, d=detail,
                        notices=[_NOTICES[n] for n in notices])


_NOTICES = {
    "approved": "You approved it; the plan received your decision.",
    "rejected": "You rejected it; the plan received your decision.",
    "pause": "Paused (a running step finishes first).",
    "resume": "Resumed.",
    "terminate": "Terminated.",
    "restart": "Restarted.",
}


async def approvals(request: Request, console: Console, session: Session) -> Response:
    items = await _data.approvals(console.flow, console.human_only)
    return console.page(request, "approvals.html", session, items=items)


async def plans(request: Request, console: Console, session: Session) -> Response:
    items = await _data.plans_overview(console.flow, request.query_params.get("agent"))
    return console.page(request, "plans.html", session, items=items)


async def plan(request: Request, console: Console, session: Session) -> Response:
    agent, name = request.path_params["agent"], request.path_params["name"]
    store = console.flow.engine.store
    rows = list(reversed(await store.list_plan_versions(agent, name)))
    if not rows:
        return console.message(request, session, "Not found",
                               f"Agent {agent!r} has no plan {name!r}.", status_code=404,
                               back="/plans")
    current = await store.get_plan_version(agent, name)
    versions = [{"version": r.version, "created_by": r.created_by,
                 "current": current is not None and r.version == current.version,
                 "created_at_text": datetime.fromtimestamp(r.created_at, UTC).strftime(
                     "%Y-%m-%d %H:%M:%S UTC")} for r in rows]
    source = current.source.splitlines() if current else []
    return console.page(request, "plan.html", session, agent=agent, name=name,
                        versions=versions, source=source)


async def plan_diff(request: Request, console: Console, session: Session) -> Response:
    agent, name = request.path_params["agent"], request.path_params["name"]
    a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
    try:
        lines = await _data.plan_diff(console.flow, agent, name, a, b)
    except AgentflowError as exc:
        return console.message(request, session, "Not found", str(exc), status_code=404)
    return console.page(request, "diff.html", session, agent=agent, name=name, a=a, b=b,
                        lines=lines)


# -- actions -----------------------------------------------------------------------------
async def confirm(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    action = request.query_params.get("action", "")
    if action not in ACTIONS or not session.can_act:
        return console.message(request, session, "Unknown action",
                               f"{action!r} is not an action you can take here.",
                               status_code=400, back=f"/instances/{instance_id}")
    try:
        detail = await _data.instance_detail(console.flow, instance_id, console.human_only)
    except NotFoundError:
        return console.message(request, session, "Not found",
                               f"No instance has the id {instance_id!r}.", status_code=404)
    steps = list(dict.fromkeys(r.name for r in detail.history))
    return console.page(request, "confirm.html", session, s=detail.summary, action=action,
                        steps=steps)


async def act(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    action = _field(form, "action")
    back = f"/instances/{instance_id}"
    if action not in ACTIONS:
        return console.message(request, session, "Unknown action",
                               f"{action!r} is not an action; nothing was done.",
                               status_code=400, back=back)
    flow = console.flow
    try:
        inst = await flow.engine.get_instance(instance_id)
        if action == "restart":
            row = await flow.engine.store.get_instance(instance_id)
            from_step = _step_name(_field(form, "from_step"))
            if row is not None and row.scope and _field(form, "upgrade"):
                agent_inst = await flow.agent(row.scope).get(instance_id)
                await agent_inst.restart(from_step, upgrade=True)
            else:
                await inst.restart(from_step)
        else:
            await getattr(inst, action)()
    except NotFoundError:
        return console.message(request, session, "Not found",
                               f"No instance has the id {instance_id!r}.", status_code=404)
    except (InvalidStateError, AgentflowError) as exc:
        return console.message(request, session, f"Could not {action}", str(exc),
                               status_code=409, back=back)
    await _data.record_action(flow, instance_id, by=session.name, action=action)
    return RedirectResponse(f"{back}?{urlencode({'notice': action})}", 303)


def _step_name(value: str) -> str | None:
    """The step a restart form names (as JSON, see confirm.html), or None: the top."""
    if not value:
        return None
    try:
        name = json.loads(value)
    except ValueError:
        raise InvalidStateError(f"the step {value!r} is not one the form offered; "
                                "nothing was done") from None
    return name if isinstance(name, str) and name else None


async def _deliver(console: Console, instance_id: str, seen_ref: str, approved: bool,
                   comment: str) -> tuple[bool, str]:
    """Send a person's decision to the wait they saw (``seen_ref``), atomically: if the
    instance no longer waits at exactly that wait, nothing is sent.

    Returns:
        Whether it was delivered, and what to tell the person.
    """
    flow = console.flow
    row = await flow.engine.store.get_instance(instance_id)
    if row is None or not row.scope:
        return False, f"No approval waits on instance {instance_id!r}."
    decision = HumanDecision(approved=approved, comment=comment[:2000])

    async def ask_human(request: ApprovalRequest) -> HumanAnswer:
        seen = request.model_copy(update={"ref": seen_ref})
        return HumanAnswer(action="accept", decision=decision, request=seen)

    outcome = await call_tool(flow.agent(row.scope), "approve",
                              {"instance_id": instance_id, "note": ""},
                              ToolContext(human_only=console.human_only, ask_human=ask_human))
    result = outcome.result
    if result is None or not getattr(result, "delivered", False):
        if result is not None and getattr(result, "outcome", "") == "stale":
            return False, ("The instance changed since this approval was shown (it was "
                           "answered, restarted or moved on); nothing was sent.")
        return False, (outcome.error or "Nothing was sent.").removeprefix("Error: ")
    return True, "delivered"


async def decide(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    verdict = _field(form, "decision")
    if verdict not in ("approve", "reject"):
        return console.message(request, session, "No decision",
                               "Choose Approve or Reject; nothing was sent.", status_code=400)
    ref = _field(form, "ref")
    delivered, text = await _deliver(console, instance_id, ref, verdict == "approve",
                                     _field(form, "comment"))
    if not delivered:
        return console.message(request, session, "Nothing was sent", text, status_code=409,
                               back=f"/instances/{instance_id}")
    await _data.record_decision(console.flow, instance_id, ref, by=session.name,
                                approved=verdict == "approve",
                                comment=_field(form, "comment"), via="console")
    notice = "approved" if verdict == "approve" else "rejected"
    return RedirectResponse(f"/instances/{instance_id}?{urlencode({'notice': notice})}", 303)


# -- approval links ----------------------------------------------------------------------
async def mint_link(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    ref = _field(form, "ref")
    row = await console.flow.engine.store.get_instance(instance_id)
    view = (await _data.approval_view(console.flow, row, console.human_only)
            if row is not None else None)
    if view is None or view.request.ref != ref:
        return console.message(request, session, "No link made",
                               "This instance no longer waits for that approval.",
                               status_code=409, back=f"/instances/{instance_id}")
    token = (await console.signer()).new_link(instance_id, ref,
                                              lifetime=console.config.link_seconds,
                                              by=session.name)
    base = (console.config.public_url or str(request.base_url)).rstrip("/")
    expires = datetime.fromtimestamp(
        (await console.signer()).link(token).expires, UTC)  # type: ignore[union-attr]
    return console.page(request, "minted.html", session, instance_id=instance_id,
                        url=f"{base}/link/{token}",
                        expires=expires.strftime("%Y-%m-%d %H:%M UTC"))


async def _link_state(console: Console, token: str
                      ) -> tuple[LinkClaims | None, _data.ApprovalView | None, str | None]:
    """The link's claims and the approval it answers, or why it cannot be used."""
    claims = (await console.signer()).link(token)
    if claims is None:
        return None, None, ("This approval link is not valid: it was altered, cut short, "
                            "or not made by this console. Nothing was sent.")
    if claims.expires < datetime.now(UTC).timestamp():
        return claims, None, "This approval link has expired. Nothing was sent."
    if await console.flow.engine.store.kv_get(_data.CONSOLE_SCOPE,
                                              f"link/{claims.nonce}") is not None:
        return claims, None, ("This approval link was already used; a link answers once. "
                              "Nothing was sent.")
    row = await console.flow.engine.store.get_instance(claims.instance_id)
    view = (await _data.approval_view(console.flow, row, console.human_only)
            if row is not None else None)
    if view is None and not claims.ref:  # a plan's link names the instance, not a wait
        return claims, None, ("The instance this link was made for does not wait for an "
                              "approval now (not yet, or no longer). Nothing was sent.")
    if view is None or (claims.ref and view.request.ref != claims.ref):
        return claims, None, ("The approval this link was made for is no longer waiting "
                              "(it was answered, restarted or moved on). Nothing was sent.")
    return claims, view, None


async def link_page(request: Request) -> Response:
    console: Console = request.app.state.console
    token = request.path_params["token"]
    claims, view, problem = await _link_state(console, token)
    if problem is not None or claims is None or view is None:
        return console.message(request, None, "Approval link refused", problem or "",
                               status_code=410 if claims else 400)
    expires = datetime.fromtimestamp(claims.expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return console.page(request, "link.html", None, view=view, claims=claims, token=token,
                        expires=expires)


async def link_decide(request: Request) -> Response:
    """A decision through a link. The link's token is the credential (it is secret,
    and a cross-site form cannot know it), so no session or CSRF cookie is asked."""
    console: Console = request.app.state.console
    token = request.path_params["token"]
    claims, view, problem = await _link_state(console, token)
    if problem is not None or claims is None or view is None:
        return console.message(request, None, "Approval link refused", problem or "",
                               status_code=410 if claims else 400)
    form = await request.form()
    verdict = _field(form, "decision")
    if verdict not in ("approve", "reject"):
        return console.message(request, None, "No decision",
                               "Choose Approve or Reject; nothing was sent.", status_code=400)
    store = console.flow.engine.store
    now = console.flow.engine.clock.now()
    ref = claims.ref or _field(form, "ref")  # a plan's link: the wait the person saw
    delivered, text = await _deliver(console, claims.instance_id, ref,
                                     verdict == "approve", _field(form, "comment"))
    if not delivered:
        return console.message(request, None, "Nothing was sent", text, status_code=409)
    await store.kv_set(_data.CONSOLE_SCOPE, f"link/{claims.nonce}", json.dumps(
        {"instance_id": claims.instance_id, "at": now}), now)
    await _data.record_decision(console.flow, claims.instance_id, ref,
                                by=f"approval link from {claims.by}",
                                approved=verdict == "approve",
                                comment=_field(form, "comment"), via="link")
    word = "approved" if verdict == "approve" else "rejected"
    return console.message(request, None, "Thank you",
                           f"You {word} it; the plan received your decision.",
                           status_code=200, kind="notice")


# -- live --------------------------------------------------------------------------------
async def events(request: Request, console: Console, session: Session) -> Response:
    """Server-sent events: one per change (``id`` is its seq, so a reconnecting
    browser resumes where it was with ``Last-Event-ID``)."""
    instance_id = request.query_params.get("instance")
    last = request.headers.get("last-event-id") or request.query_params.get("after", "")
    after = int(last) if last.isdigit() else None

    async def stream() -> AsyncIterator[dict[str, str]]:
        async for change in console.flow.subscribe(
                after=after, instance_ids=[instance_id] if instance_id else None, poll=0.1):
            yield {"id": str(change.seq), "data": change.model_dump_json()}

    return EventSourceResponse(stream(), ping=15, send_timeout=30)


def create_app(flow: AgentFlow, config: ConsoleConfig | None = None) -> Starlette:
    """The console as an ASGI app over ``flow`` (which the caller starts and closes).

    Args:
        flow: the agentflow on the database the console shows.
        config: operators, secret and policies (see `ConsoleConfig`).

    Returns:
        A Starlette application; serve it with uvicorn, or mount it in yours.
    """
    console = Console(flow, config or ConsoleConfig())
    if not console.config.operators:
        print("agentflow console: no operators are configured, so nobody can sign in",
              file=sys.stderr)

    def home(request: Request) -> Response:
        return RedirectResponse("/instances", 303)

    routes = [
        Route("/", home, name="home"),
        Route("/login", login, methods=["GET", "POST"], name="login"),
        Route("/logout", _signed_in(logout), methods=["POST"], name="logout"),
        Route("/instances", _signed_in(instances), name="instances"),
        Route("/instances/{instance_id}", _signed_in(instance), name="instance"),
        Route("/instances/{instance_id}/confirm", _signed_in(confirm), name="confirm"),
        Route("/instances/{instance_id}/act", _signed_in(act, acts=True), methods=["POST"],
              name="act"),
        Route("/instances/{instance_id}/decide", _signed_in(decide, acts=True),
              methods=["POST"], name="decide"),
        Route("/instances/{instance_id}/link", _signed_in(mint_link, acts=True),
              methods=["POST"], name="mint_link"),
        Route("/approvals", _signed_in(approvals), name="approvals"),
        Route("/plans", _signed_in(plans), name="plans"),
        Route("/plans/{agent}/{name}", _signed_in(plan), name="plan"),
        Route("/plans/{agent}/{name}/diff", _signed_in(plan_diff), name="plan_diff"),
        Route("/link/{token}", link_page, name="link"),
        Route("/link/{token}", link_decide, methods=["POST"], name="link_decide"),
        Route("/events", _signed_in(events), name="events"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_SecurityHeaders)])
    app.state.console = console
    return app
