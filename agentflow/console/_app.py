"""The console's Starlette application: pages, actions, the live event stream.

Pages are rendered on the server (Jinja2, autoescaped). The only script is
``static/live.js``: it listens to ``/events`` (server-sent events from the change feed)
and re-fetches the page when something changed. Every response forbids framing and
inline script (a Content-Security-Policy), and sends no referrer (approval links carry
their token in the URL). Plumbing is in ``_web.py``, decisions and links in
``_decide.py``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentflow.console import _data
from agentflow.console._auth import Session
from agentflow.console._decide import decide, link_decide, link_page, mint_link
from agentflow.console._web import (
    ACTIONS,
    COOKIE,
    HERE,
    STATUSES,
    Console,
    ConsoleConfig,
    SecurityHeaders,
    field_of,
    signed_in,
)
from agentflow.errors import AgentflowError, InvalidStateError, NotFoundError
from agentflow.plans import AgentFlow

__all__ = ["ConsoleConfig", "create_app"]


# -- sign in and out ---------------------------------------------------------------------
async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    next_url = request.query_params.get("next", "/instances")
    if request.method == "GET":
        return _login_form(console, request, _local(next_url), error=None)
    form = await request.form()
    target = _local(field_of(form, "next"))
    client = request.client.host if request.client else ""
    wait = console.sign_ins.retry_after(client)
    if wait:  # checked before the token: no guessing faster than the limit allows
        response = _login_form(console, request, target, status_code=429,
                               error=f"Too many failed sign-ins; try again in {wait} s.")
        response.headers["Retry-After"] = str(wait)
        return response
    # Sign-in is an action too: without this, another site could post its own operator
    # token here and have a person act, unknowingly, as that operator (login CSRF). The
    # form carries a value that only a page of this site set in a cookie.
    sent, expected = field_of(form, "login_token"), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_form(console, request, target, status_code=403,
                           error="This sign-in form did not come from this page or has "
                                 "expired; sign in again here.")
    operator = console.operator(field_of(form, "token"))
    if operator is None:
        console.sign_ins.failed(client)
        return _login_form(console, request, target, status_code=401,
                           error="That token is not an operator's token.")
    _, cookie = (await console.signer()).new_session(
        operator, lifetime=console.config.session_seconds)
    response = RedirectResponse(target, 303)
    response.set_cookie(COOKIE, cookie, max_age=int(console.config.session_seconds),
                        httponly=True, samesite="strict",
                        secure=console.config.secure_cookies, path="/")
    return response


LOGIN_COOKIE = "agentflow_login"


def _login_form(console: Console, request: Request, target: str, *, error: str | None,
                status_code: int = 200) -> Response:
    """The sign-in page, with a fresh anti-forgery value in its form and in a cookie."""
    token = secrets.token_urlsafe(24)
    response = console.page(request, "login.html", None, status_code=status_code,
                            next=target, error=error, login_token=token)
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True,
                        samesite="strict", secure=console.config.secure_cookies,
                        path="/login")
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
        detail = await _data.instance_detail(console.flow, instance_id, await console.human_only())
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
    items = await _data.approvals(console.flow, await console.human_only())
    return console.page(request, "approvals.html", session, items=items)


async def plans(request: Request, console: Console, session: Session) -> Response:
    items = await _data.plans_overview(console.flow, request.query_params.get("agent"))
    return console.page(request, "plans.html", session, items=items)


async def schedules(request: Request, console: Console, session: Session) -> Response:
    """Every schedule, agents' and trusted workflows', with its next and last fire."""
    items = await console.flow.engine.schedules.list(scope=None)
    return console.page(request, "schedules.html", session, items=items)


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
        detail = await _data.instance_detail(console.flow, instance_id, await console.human_only())
    except NotFoundError:
        return console.message(request, session, "Not found",
                               f"No instance has the id {instance_id!r}.", status_code=404)
    steps = list(dict.fromkeys(r.name for r in detail.history))
    return console.page(request, "confirm.html", session, s=detail.summary, action=action,
                        steps=steps)


async def act(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    action = field_of(form, "action")
    back = f"/instances/{instance_id}"
    if action not in ACTIONS:
        return console.message(request, session, "Unknown action",
                               f"{action!r} is not an action; nothing was done.",
                               status_code=400, back=back)
    flow = console.flow
    by = actor(session)
    try:
        inst = await flow.engine.get_instance(instance_id)
        if action == "restart":  # recorded, with who made it, by restart itself
            row = await flow.engine.store.get_instance(instance_id)
            from_step = _step_name(field_of(form, "from_step"))
            if row is not None and row.scope and field_of(form, "upgrade"):
                agent_inst = await flow.agent(row.scope).get(instance_id)
                await agent_inst.restart(from_step, upgrade=True, by=by)
            else:
                await inst.restart(from_step, by=by)
        else:
            await getattr(inst, action)()
            await _data.record_action(flow, instance_id, by=by, action=action)
    except NotFoundError:
        return console.message(request, session, "Not found",
                               f"No instance has the id {instance_id!r}.", status_code=404)
    except (InvalidStateError, AgentflowError) as exc:
        return console.message(request, session, f"Could not {action}", str(exc),
                               status_code=409, back=back)
    return RedirectResponse(f"{back}?{urlencode({'notice': action})}", 303)


def actor(session: Session) -> str:
    """Who acts, as the operator log records it (the CLI writes ``operator <login> via
    agentflow``)."""
    return f"operator {session.name} via console"


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
        Route("/logout", signed_in(logout), methods=["POST"], name="logout"),
        Route("/instances", signed_in(instances), name="instances"),
        Route("/instances/{instance_id}", signed_in(instance), name="instance"),
        Route("/instances/{instance_id}/confirm", signed_in(confirm), name="confirm"),
        Route("/instances/{instance_id}/act", signed_in(act, acts=True), methods=["POST"],
              name="act"),
        Route("/instances/{instance_id}/decide", signed_in(decide, acts=True),
              methods=["POST"], name="decide"),
        Route("/instances/{instance_id}/link", signed_in(mint_link, acts=True),
              methods=["POST"], name="mint_link"),
        Route("/approvals", signed_in(approvals), name="approvals"),
        Route("/plans", signed_in(plans), name="plans"),
        Route("/schedules", signed_in(schedules), name="schedules"),
        Route("/plans/{agent}/{name}", signed_in(plan), name="plan"),
        Route("/plans/{agent}/{name}/diff", signed_in(plan_diff), name="plan_diff"),
        Route("/link/{token}", link_page, name="link"),
        Route("/link/{token}", link_decide, methods=["POST"], name="link_decide"),
        Route("/events", signed_in(events), name="events"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.console = console
    return app
