"""What the console's pages show, read through agentflow's public API.

Each function returns plain view objects; the templates only lay them out. Text a plan
or an agent chose (step names, params, notes, errors, source) is passed through as
data: the templates escape it, and the ``shown`` filter writes control, zero-width and
bidi characters as visible escapes.
"""

from __future__ import annotations

import difflib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentflow.errors import AgentflowError, InstanceNotFoundError
from agentflow.models import TERMINAL_STATUSES, InstanceStatus, StepRecord, WaitingOn
from agentflow.plans import PLAN_WORKFLOW, AgentFlow
from agentflow.policy import OperatorPolicy, is_human_only
from agentflow.store import InstanceRow, Store
from agentflow.tools import ApprovalRequest, approval_request

__all__ = [
    "CONSOLE_SCOPE",
    "ApprovalView",
    "InstanceDetail",
    "InstanceSummary",
    "approvals",
    "claim_link",
    "human_only_now",
    "instance_detail",
    "instances_page",
    "link_used",
    "operator_log_for",
    "plan_diff",
    "plans_overview",
    "prune_used_links",
    "record_action",
    "record_decision",
    "release_link",
]

#: The key-value scope where the console keeps its own records (decisions, used links,
#: its secret). ``#`` is not allowed in agent ids, so no agent can read or write it.
CONSOLE_SCOPE = "#console"
PAGE_SIZE = 50


def _envelope(row: InstanceRow) -> tuple[dict[str, Any], Any]:
    """The agent-plan metadata and the params of an instance (empty metadata for a
    trusted workflow's instance)."""
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return {}, None
    if isinstance(payload, dict) and isinstance(payload.get("__dispatcher_metadata"), dict):
        return payload["__dispatcher_metadata"], payload.get("params")
    return {}, payload


def waits_on(w: WaitingOn | None) -> str:
    if w is None:
        return ""
    until = w.until.strftime("%Y-%m-%d %H:%M:%S UTC")
    if w.kind == "event":
        return f"event {w.type} at step {w.step}, until {until}"
    if w.kind == "retry":
        return f"retry {w.attempt} of step {w.step} at {until}"
    return f"sleep {w.step} until {until}"


@dataclass(frozen=True)
class InstanceSummary:
    id: str
    agent: str
    plan: str
    version: str
    workflow: str
    status: str
    waiting: str
    created_at: datetime
    updated_at: datetime
    cursor: str  # the keyset of this row: "created_at|id"


def _summary(row: InstanceRow, status: InstanceStatus) -> InstanceSummary:
    meta, _ = _envelope(row)
    return InstanceSummary(
        id=row.id, agent=row.scope or "", plan=str(meta.get("plan", "")),
        version=str(meta.get("version", "")), workflow=row.workflow, status=status.status,
        waiting=waits_on(status.waiting_on), created_at=status.created_at,
        updated_at=status.updated_at, cursor=f"{row.created_at!r}|{row.id}")


def parse_cursor(text: str | None) -> tuple[float, str] | None:
    if not text:
        return None
    at, sep, instance_id = text.partition("|")
    try:
        return (float(at), instance_id) if sep else None
    except ValueError:
        return None


async def instances_page(flow: AgentFlow, *, agent: str | None, plan: str | None,
                         status: str | None, before: str | None,
                         limit: int = PAGE_SIZE) -> tuple[list[InstanceSummary], str | None]:
    """One page of instances, newest first, and the cursor of the next page (if any)."""
    from agentflow._instance import instance_status  # the engine's own row decoder

    rows = await flow.engine.store.list_instances(
        scopes=[agent] if agent else None, plans=[plan] if plan else None,
        statuses=[status] if status else None, limit=limit + 1,
        before=parse_cursor(before))
    items = [_summary(r, instance_status(r)) for r in rows[:limit]]
    return items, (items[-1].cursor if len(rows) > limit and items else None)


@dataclass(frozen=True)
class SourceLine:
    number: int
    text: str
    current: bool


@dataclass
class InstanceDetail:
    summary: InstanceSummary
    status: InstanceStatus
    params: str
    output: str | None
    error: dict[str, Any] | None
    history: list[StepRecord]
    source: list[SourceLine] = field(default_factory=list)
    log: list[LoggedAction] = field(default_factory=list)
    approval: ApprovalView | None = None

    @property
    def actions(self) -> list[str]:
        """The actions that apply to the instance in its status now."""
        status = self.status.status
        found = []
        if status in ("queued", "running", "waiting"):
            found.append("pause")
        if status in ("paused", "waiting_for_pause"):
            found.append("resume")
        if status not in TERMINAL_STATUSES:
            found.append("terminate")
        return [*found, "restart"]


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _step_line(source: str, step: str | None, error: dict[str, Any] | None) -> int | None:
    """The source line the instance is at: a located error's line if it has one, else
    the first line that names the current step in a string literal."""
    where = error.get("where") if error else None  # a located plan error
    if isinstance(where, dict) and isinstance(where.get("line"), int):
        return int(where["line"])
    if error and isinstance(error.get("line"), int):
        return int(error["line"])
    if not step:
        return None
    for quote in ('"', "'"):
        needle = f"{quote}{step}{quote}"
        for number, text in enumerate(source.splitlines(), 1):
            if needle in text:
                return number
    return None


async def instance_detail(flow: AgentFlow, instance_id: str,
                          human_only: frozenset[str]) -> InstanceDetail:
    """Everything the instance page shows.

    Raises:
        InstanceNotFoundError: no instance has that id.
    """
    engine = flow.engine
    inst = await engine.get_instance(instance_id)
    status = await inst.status()
    history = await inst.history()
    row = await engine.store.get_instance(instance_id)
    if row is None:
        raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
    meta, params = _envelope(row)
    detail = InstanceDetail(
        summary=_summary(row, status), status=status, params=_pretty(params),
        output=None if status.output is None else _pretty(status.output),
        error=dict(status.error) if status.error else None, history=history)
    if row.scope and meta.get("plan") and meta.get("version"):
        plan = await engine.store.get_plan_version(row.scope, str(meta["plan"]),
                                                   str(meta["version"]))
        if plan is not None:
            # Where it is: its wait, its error's line, or the step it ran last while
            # it runs; a finished instance is nowhere in particular.
            current = status.waiting_on.step if status.waiting_on else (
                history[-1].name if history and status.status != "complete" else None)
            line = (None if status.status in ("complete", "terminated") else
                    _step_line(plan.source, current, detail.error))
            detail.source = [SourceLine(n, text, n == line)
                             for n, text in enumerate(plan.source.splitlines(), 1)]
    detail.log = await operator_log_for(flow, instance_id)
    if row.scope:
        detail.approval = await approval_view(flow, row, human_only)
    return detail


@dataclass(frozen=True)
class ApprovalView:
    """An approval request as the console shows it: the record read from the store
    (`agentflow.tools.approval_request`, the same one every surface renders), with
    the params pretty-printed and the source from the wait onward split into lines."""

    request: ApprovalRequest
    params: str
    source_after: list[SourceLine]
    created_at: datetime


async def human_only_now(flow: AgentFlow, extra: frozenset[str] = frozenset()
                         ) -> frozenset[str]:
    """The human-only event types in force: the database's policy (which every front
    end obeys, `agentflow.policy`) and any this console adds."""
    return (await OperatorPolicy(flow.engine.store).read()).human_only | extra


async def approval_view(flow: AgentFlow, row: InstanceRow, human_only: frozenset[str]
                        ) -> ApprovalView | None:
    """The approval request of an instance that waits on a human-only event, else None."""
    if row.workflow != PLAN_WORKFLOW or not row.scope or row.status != "waiting":
        return None
    try:
        # Several at once (a gather): the earliest is shown and answered (by its ref,
        # so the decision reaches that wait only), then the next.
        request = await approval_request(flow.agent(row.scope), row.id, "", human_only,
                                         first=True)
    except AgentflowError:
        return None
    try:
        params = _pretty(json.loads(request.params))
    except ValueError:  # capped: shown as the record has it
        params = request.params
    # The whole plan, the line the run resumes at marked: what runs once approved may
    # call any function the plan defines, above the wait or above `run`.
    if request.plan_source:
        source = [SourceLine(n, text, n == request.source_line)
                  for n, text in enumerate(request.plan_source.splitlines(), 1)]
    else:
        source = [SourceLine(n, text, False) for n, text in
                  enumerate(request.source.splitlines(), request.source_line)]
    return ApprovalView(request=request, params=params, source_after=source,
                        created_at=datetime.fromtimestamp(row.created_at, UTC))


async def approvals(flow: AgentFlow, human_only: frozenset[str], *, limit: int = 500
                    ) -> list[ApprovalView]:
    """Every agent-plan instance that waits on a human-only event, oldest wait first."""
    from agentflow._instance import instance_status

    rows = await flow.engine.store.list_instances(workflows=[PLAN_WORKFLOW],
                                                  statuses=["waiting"], limit=limit)
    found = []
    for row in rows:
        w = instance_status(row).waiting_on
        if w is not None and w.kind == "event" and w.type and is_human_only(w.type,
                                                                            human_only):
            view = await approval_view(flow, row, human_only)
            if view is not None:
                found.append(view)
    found.sort(key=lambda v: (v.request.deadline, v.request.instance_id))
    return found


async def stored_secret(store: Store, now: float) -> bytes:
    """The console's signing secret kept in the database, made on first use.

    Made with an insert-if-absent and read back, so that processes starting at once on
    a fresh database all end up with the one secret that was added first (each making
    its own would make links signed by one fail on the others).
    """
    existing = await store.kv_get(CONSOLE_SCOPE, "secret")
    if existing is None:
        await store.kv_add(CONSOLE_SCOPE, "secret", secrets.token_hex(32), now)
        existing = await store.kv_get(CONSOLE_SCOPE, "secret")
    if existing is None:  # deleted between the two statements: try once more
        return await stored_secret(store, now)
    return bytes.fromhex(existing)


# -- used approval links ----------------------------------------------------------------
#: Where a used link's nonce is kept until the link expires: the key carries the
#: expiry (zero-padded epoch seconds), so the expired ones are the first keys in order.
USED_LINK_PREFIX = "used-link/"
#: How databases written before kept a used link (no expiry known: kept, and honoured).
_OLD_USED_LINK_PREFIX = "link/"


def _used_key(nonce: str, expires: float) -> str:
    return f"{USED_LINK_PREFIX}{math.ceil(expires):012d}/{nonce}"


async def link_used(store: Store, nonce: str, expires: float) -> bool:
    """Whether the link with this nonce and expiry was already used."""
    return (await store.kv_get(CONSOLE_SCOPE, _used_key(nonce, expires)) is not None
            or await store.kv_get(CONSOLE_SCOPE, f"{_OLD_USED_LINK_PREFIX}{nonce}")
            is not None)


async def claim_link(store: Store, nonce: str, expires: float, instance_id: str,
                     now: float) -> bool:
    """Mark a link used, atomically (of two uses at once exactly one claims it).
    Returns False when it was used already."""
    if await store.kv_get(CONSOLE_SCOPE, f"{_OLD_USED_LINK_PREFIX}{nonce}") is not None:
        return False
    return await store.kv_add(CONSOLE_SCOPE, _used_key(nonce, expires),
                              json.dumps({"instance_id": instance_id, "at": now}), now)


async def release_link(store: Store, nonce: str, expires: float) -> None:
    """Un-use a claimed link whose decision was not delivered (nothing was sent)."""
    await store.kv_delete(CONSOLE_SCOPE, _used_key(nonce, expires))


async def prune_used_links(store: Store, now: float, *, batch: int = 200) -> int:
    """Delete the records of used links that have expired by ``now`` (epoch seconds):
    an expired link is refused for being expired, so its record is no longer needed.
    Returns how many were deleted."""
    deleted = 0
    while True:
        keys = await store.kv_list(CONSOLE_SCOPE, USED_LINK_PREFIX, limit=batch)
        expired = []
        for key in keys:
            stamp = key[len(USED_LINK_PREFIX):].partition("/")[0]
            if not stamp.isdigit() or int(stamp) >= now:
                break  # in key order: the rest expire later
            expired.append(key)
        for key in expired:
            deleted += await store.kv_delete(CONSOLE_SCOPE, key)
        if len(expired) < batch:
            return deleted


# -- who did what: the store's operator log --------------------------------------------
async def record_decision(flow: AgentFlow, instance_id: str, ref: str, *, by: str,
                          approved: bool, comment: str, via: str) -> None:
    """Keep who decided an approval, beside what the plan received."""
    await flow.engine.store.append_operator_log(
        "decision", instance_id, json.dumps({"approved": approved, "comment": comment,
                                             "via": via, "ref": ref}),
        at=time.time(), actor=by)


async def record_action(flow: AgentFlow, instance_id: str, *, by: str, action: str
                        ) -> None:
    """Keep who paused, resumed or terminated an instance from the console (a restart
    records itself, with who made it: `Instance.restart`)."""
    await flow.engine.store.append_operator_log("action", instance_id, json.dumps(action),
                                                at=time.time(), actor=by)


@dataclass(frozen=True)
class LoggedAction:
    """One entry of an instance's operator log, as the instance page lists it."""

    at: datetime
    actor: str
    what: str  # "approved", "rejected", "restarted", "paused", ...
    detail: str  # a decision's comment, a restart's step or version


async def operator_log_for(flow: AgentFlow, instance_id: str) -> list[LoggedAction]:
    """Decisions and actions people took on the instance, oldest first."""
    store = flow.engine.store
    found: list[tuple[float, LoggedAction]] = []
    for kind in ("decision", "action", "restart"):
        for row in await store.read_operator_log(kind, instance_id):
            try:
                value = json.loads(row.value)
            except ValueError:
                value = None
            what, detail = kind, ""
            if kind == "decision" and isinstance(value, dict):
                what = "approved" if value.get("approved") else "rejected"
                detail = str(value.get("comment") or "")
            elif kind == "action" and isinstance(value, str):
                what = {"pause": "paused", "resume": "resumed",
                        "terminate": "terminated"}.get(value, value)
            elif kind == "restart":
                what = "restarted"
                if isinstance(value, dict):
                    parts = [f"from step {value['from_step']}" if value.get("from_step")
                             else "from the top"]
                    if value.get("version"):
                        parts.append(f"on version {value['version']}")
                    detail = ", ".join(parts)
            found.append((row.at, LoggedAction(datetime.fromtimestamp(row.at, UTC),
                                               row.actor, what, detail)))
    return [item for _, item in sorted(found, key=lambda pair: pair[0])]


# -- plans -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSummary:
    agent: str
    name: str
    versions: list[Any]


async def plans_overview(flow: AgentFlow, agent: str | None = None) -> list[PlanSummary]:
    store = flow.engine.store
    out = []
    for row in await store.list_plans(agent):
        versions = await store.list_plan_versions(row.scope, row.name)
        out.append(PlanSummary(row.scope, row.name, list(reversed(versions))))
    return out


async def plan_diff(flow: AgentFlow, agent: str, name: str, old: str, new: str
                    ) -> list[tuple[str, str]]:
    """A unified diff between two versions, as ``(kind, line)`` with kind one of
    ``add``, ``del``, ``hunk``, ``ctx``.

    Raises:
        AgentflowError: a version does not exist.
    """
    store = flow.engine.store
    a = await store.get_plan_version(agent, name, old)
    b = await store.get_plan_version(agent, name, new)
    if a is None or b is None:
        raise InstanceNotFoundError(f"plan {name!r} of agent {agent!r} has no version "
                                    f"{old if a is None else new!r}")
    lines = []
    for line in difflib.unified_diff(a.source.splitlines(), b.source.splitlines(),
                                     fromfile=old, tofile=new, lineterm=""):
        kind = ("hunk" if line.startswith("@@") else "add" if line.startswith("+")
                else "del" if line.startswith("-") else "ctx")
        lines.append((kind, line))
    return lines
