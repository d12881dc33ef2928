"""Read and steer commands: ``plans``, ``instances``, ``show``, ``wait``, ``approve``,
``reject``, ``send-event``, ``pause``, ``resume``, ``terminate``, ``restart``, ``doctor``.

They open the database as a client (no scheduler): reading and steering never runs a
plan. Operators act on any instance, whichever agent it belongs to: this is the
operator's side, where a human approves what an agent may not approve itself.

(Over 400 lines, on purpose: each command is a short function over the same two
helpers, opening the database as a client and printing a record; splitting them by
verb would scatter those rules, not shorten any command.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentflow._engine import Engine
from agentflow._instance import Instance
from agentflow.cli._approvals import check_decision_payload
from agentflow.cli._db import client
from agentflow.cli._exits import EXIT_FAILED, EXIT_NOT_FINISHED, EXIT_OK, EXIT_TIMEOUT
from agentflow.cli._text import literal, printable
from agentflow.cli._time import iso
from agentflow.cli._workers import no_worker_note
from agentflow.errors import InvalidArgumentError, InvalidStateError, describe_error
from agentflow.models import TERMINAL_STATUSES, InstanceStatus, StepRecord, WaitingOn
from agentflow.notebook import Timeline, activity_lines
from agentflow.plans.dispatch import ENVELOPE_KEY
from agentflow.policy import OperatorPolicy, default_actor
from agentflow.store import InstanceRow

UUID_LENGTH = 36  # a generated instance id
PIPE_WIDTH = 10_000  # tables take only the width they need


class _PipeConsole(Console):
    """Rich's console, except that a closed pipe ends the command the way `main` ends
    it for every command (exit 141, quietly), not with Rich's own exit 1."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def out(args: argparse.Namespace) -> Console:
    # Without markup: what is printed comes from plans, and `literal` keeps it as it is.
    # Through a pipe (and no $COLUMNS) nothing wraps: one instance is one line for grep.
    tty = sys.stdout.isatty()
    return _PipeConsole(highlight=False, markup=False, emoji=False, soft_wrap=not tty,
                        width=None if tty or os.environ.get("COLUMNS") else PIPE_WIDTH)


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _ago(when: datetime) -> str:
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            amount = f"{abs(seconds) / size:.0f}{unit}"
            return f"{amount} ago" if seconds > 0 else f"in {amount}"
    return f"{seconds:.0f}s ago" if seconds >= 0 else f"in {-seconds:.0f}s"


def waits_on(status: InstanceStatus) -> str:
    return describe_wait(status.waiting_on)


def describe_wait(w: WaitingOn | None) -> str:
    if w is None:
        return ""
    until = w.until.strftime("%Y-%m-%d %H:%M:%S UTC")
    if w.kind == "event":
        return f"event {w.type!r} (step {w.step!r}) until {until}"
    if w.kind == "retry":
        return f"retry {w.attempt} of {w.step!r} at {until}"
    return f"sleep {w.step!r} until {until}"


async def _agent_and_plan(engine: Engine, status: InstanceStatus) -> tuple[str, str]:
    row = await engine.store.get_instance(status.id)
    if row is None or not row.scope:
        return "", status.workflow
    try:
        meta = json.loads(row.payload)[ENVELOPE_KEY]
        return row.scope, f"{meta['plan']}@{meta['version'][:8]}"
    except (KeyError, TypeError, ValueError):
        return row.scope, status.workflow


def plan_name(row: InstanceRow) -> str | None:
    """The plan an agent plan's instance runs (None for a trusted workflow's)."""
    try:
        name = json.loads(row.payload)[ENVELOPE_KEY]["plan"]
    except (KeyError, TypeError, ValueError):
        return None
    return name if isinstance(name, str) else None


_PAGE = 500


async def matching_rows(engine: Engine, *, statuses: list[str] | None, agent: str | None,
                        workflow: str | None, plan: str | None, limit: int
                        ) -> list[InstanceRow]:
    """Instances, newest first, filtered as `instances` is. ``workflow`` names a trusted
    workflow or an agent's plan (its instances run the internal workflow
    ``agentflow.plan``, which need not be typed); ``plan`` names a plan only."""
    from agentflow.plans import PLAN_WORKFLOW

    scopes = [agent] if agent else None
    if workflow is None and plan is None:
        return await engine.store.list_instances(statuses=statuses, scopes=scopes,
                                                 limit=limit)
    if workflow == PLAN_WORKFLOW and plan is None:
        return await engine.store.list_instances(statuses=statuses, scopes=scopes,
                                                 workflows=[PLAN_WORKFLOW], limit=limit)
    workflows = [PLAN_WORKFLOW] if plan is not None else [workflow or "", PLAN_WORKFLOW]

    def wanted(row: InstanceRow) -> bool:
        if row.workflow != PLAN_WORKFLOW:
            return plan is None and row.workflow == workflow
        name = plan_name(row)
        return (plan is None or name == plan) and (workflow is None or name == workflow
                                                   or workflow == PLAN_WORKFLOW)

    found: list[InstanceRow] = []
    offset = 0
    while len(found) < limit:  # plans are inside the payload: filter page by page
        page = await engine.store.list_instances(statuses=statuses, scopes=scopes,
                                                 workflows=workflows, limit=_PAGE,
                                                 offset=offset)
        found.extend(r for r in page if wanted(r))
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return found[:limit]


# -- reading --------------------------------------------------------------------------
async def instances(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise InvalidArgumentError(f"--limit must be 1 or more, not {args.limit}")
    async with client(args) as engine:
        statuses = [args.status] if args.status else None
        rows = await matching_rows(engine, statuses=statuses, agent=args.agent,
                                   workflow=args.workflow, plan=args.plan, limit=args.limit)
        from agentflow._instance import instance_status
        items = [instance_status(r) for r in rows]
        extra = [await _agent_and_plan(engine, s) for s in items]
    if args.json:
        emit_json([{**s.model_dump(mode="json"), "agent": a or None, "plan": p}
                   for s, (a, p) in zip(items, extra, strict=True)])
        return EXIT_OK
    # The id is what every other command takes: never cut. A uuid keeps one line; a
    # longer id folds onto the next. Names fold too rather than end in "…".
    table = Table()
    table.add_column("id", width=max(2, min(UUID_LENGTH, max((len(s.id) for s in items),
                                                             default=2))), overflow="fold")
    for header in ("agent", "plan / workflow"):
        table.add_column(header, overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("waiting on", overflow="fold")
    table.add_column("updated", no_wrap=True)
    for s, (agent, plan) in zip(items, extra, strict=True):
        table.add_row(*map(literal, (s.id, agent, plan, s.status, waits_on(s),
                                     _ago(s.updated_at))))
    out(args).print(table if items else "no instances")
    if len(items) == args.limit:  # there may be more: say so, on stderr (not the table)
        print(f"showing the newest {args.limit}; pass --limit N to see more",
              file=sys.stderr)
    return EXIT_OK


async def plans(args: argparse.Namespace) -> int:
    async with client(args) as engine:
        rows = await engine.store.list_plans(args.agent)
    if args.json:
        emit_json([{"agent": r.scope, "name": r.name, "version": r.version,
                    "created_at": iso(r.created_at)}
                   for r in rows])
        return EXIT_OK
    table = Table("agent", "plan", "current version", "submitted")
    for r in rows:
        table.add_row(*map(literal, (r.scope, r.name, r.version,
                                     _ago(datetime.fromtimestamp(r.created_at, UTC)))))
    out(args).print(table if rows else "no plans")
    return EXIT_OK


def timeline(history: list[StepRecord]) -> Table:
    table = Table("#", "kind", "step", "status", "attempts", "took", "result / error / wait")
    for r in Timeline(history).rows():
        detail = r["detail"] if len(r["detail"]) <= 80 else r["detail"][:79] + "…"
        table.add_row(*map(literal, (r["#"], r["kind"], r["step"], r["status"], r["attempts"],
                                     r["took"], detail)))
    return table


async def show(args: argparse.Namespace) -> int:
    async with client(args) as engine:
        inst = await engine.get_instance(args.id)
        status = await inst.status()
        history = await inst.history()
        restarted = await inst.restarts()
        agent, plan = await _agent_and_plan(engine, status)
    if args.json:
        emit_json({"status": status.model_dump(mode="json"), "agent": agent or None,
                   "plan": plan, "history": [h.model_dump(mode="json") for h in history],
                   "restarts": [r.model_dump(mode="json") for r in restarted]})
        return EXIT_OK
    console = out(args)
    console.print(Text.assemble(literal(status.id, "bold"), "  ", literal(plan),
                                *(("  agent ", literal(agent)) if agent else ())))
    console.print(Text.assemble("status: ", literal(status.status, "bold"),
                                f"  created {_ago(status.created_at)}, "
                                f"updated {_ago(status.updated_at)}"))
    for w in status.waits or ([status.waiting_on] if status.waiting_on else []):
        console.print(Text.assemble("waiting on: ", literal(describe_wait(w))))
    if status.note:  # what the status alone does not say (a holder that went away)
        console.print(Text.assemble("note: ", literal(status.note)))
    if status.output is not None:
        console.print(Text.assemble("output: ", literal(json.dumps(status.output))))
    if status.error:
        console.print(Text.assemble("error: ", literal(describe_error(status.error))))
        place = error_place(status.error)
        if place:
            console.print(Text.assemble("  at: ", literal(place)))
    console.print(timeline(history) if history else "no steps yet")
    for line in activity_lines(history):
        console.print(literal(line))
    for r in restarted:
        from_step = r.value.get("from_step") if isinstance(r.value, dict) else None
        console.print(Text.assemble("restarted ", literal(
            f"{'from step ' + repr(from_step) if from_step else 'from the top'} by "
            f"{r.actor} at {r.at.isoformat(timespec='seconds')}")))
    return EXIT_OK


def error_place(error: dict[str, Any]) -> str:
    """Where a plan error happened: ``plan line 3, in parse, after step 'fetch':
    return int(text)``, ``the return value of run, after step 'load'``, or ``""``."""
    where, at = error.get("where"), error.get("at")
    step, after = error.get("step"), error.get("after_step")
    if not isinstance(at, str):  # recorded before errors said it in words
        at = (f"in step {step!r}" if step else f"after step {after!r}" if after else "")
    if not isinstance(where, dict):
        return at.removeprefix("in ")
    return (f"plan line {where.get('line')}, in {where.get('function')}"
            + (f", {at}" if at else "") + f": {where.get('source', '')}")


def exit_code_for(status: InstanceStatus) -> int:
    if status.status == "complete":
        return EXIT_OK
    if status.status in TERMINAL_STATUSES:
        return EXIT_FAILED
    return EXIT_NOT_FINISHED


async def wait(args: argparse.Namespace) -> int:
    """Wait until the instance finishes (exit 0 complete, 1 errored/terminated, 4 timeout);
    with ``--until-waiting`` also return when it waits (exit 5). With ``--json`` the last
    status is printed whichever way it ends, a timeout included."""
    if not args.timeout >= 0:  # also refuses nan
        raise InvalidArgumentError(f"--timeout must be 0 or more seconds, not {args.timeout:g}")
    deadline = time.monotonic() + args.timeout
    async with client(args) as engine:
        inst = await engine.get_instance(args.id)
        status = await inst.status()
        live = None if args.json or not sys.stdout.isatty() else Live(console=out(args))
        try:
            if live:
                live.start()
            while True:
                if live:
                    live.update(literal(f"{status.id}: {status.status} {waits_on(status)}"))
                if status.status in TERMINAL_STATUSES or (
                        args.until_waiting and status.status in ("waiting", "paused")):
                    break
                if time.monotonic() > deadline:
                    if args.json:  # what it still waits on, for the script that asked
                        emit_json(status.model_dump(mode="json"))
                    print(f"agentflow: instance {args.id!r} still {status.status} after "
                          f"{args.timeout:g}s", file=sys.stderr)
                    if status.status in ("queued", "running"):  # say why, if we know
                        note = await no_worker_note(engine.store, args.id)
                        if note:
                            print(f"agentflow: {note}", file=sys.stderr)
                    return EXIT_TIMEOUT
                await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                status = await inst.status()
        finally:
            if live:
                live.stop()
    if args.json:
        emit_json(status.model_dump(mode="json"))
    else:
        print(printable(f"{status.id}: {status.status}" + (
            f" output={json.dumps(status.output)}" if status.output is not None else "") + (
            f" error={describe_error(status.error)}" if status.error else
            "")))
    return exit_code_for(status)


# -- steering -------------------------------------------------------------------------
def parse_payload(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"the payload is not valid JSON ({exc.msg} at column "
                                   f"{exc.colno}); quote it, e.g. '{{\"approved\": true}}'"
                                   ) from None
    except RecursionError:  # Python's parser recurses once per level
        raise InvalidArgumentError("the payload is not valid JSON here: it is nested too "
                                   "deeply to read; flatten it") from None


async def pending_approval(inst: Instance, wanted: str) -> WaitingOn:
    """The approval ``inst`` waits for now: a wait for an event of type ``wanted``.

    A human answers a question they were shown. Sent to an instance that does not wait
    for it yet, an approval would be buffered and answer a later wait nobody saw (the
    MCP ``approve`` tool refuses the same way); ``send-event`` remains for events sent
    on purpose ahead of time.

    Raises:
        InvalidStateError: it does not wait for a ``wanted`` event now.
    """
    status = await inst.status()
    w = status.waiting_on
    if (status.status == "waiting" and w is not None and w.kind == "event"
            and w.type is not None and w.type.casefold() == wanted.casefold()):
        return w
    if status.status != "waiting" or w is None:
        now = f"it is {status.status}"
    elif w.kind == "event":
        now = (f"it waits for an event of type {w.type!r}; answer that with `agentflow "
               f"send-event {inst.id} {w.type} JSON`")
    else:
        now = f"it waits on {waits_on(status)}"
    raise InvalidStateError(
        f"instance {inst.id!r} does not wait for an approval: {now}. Nothing was sent; "
        f"approve and reject answer an instance that waits for an event of type {wanted!r} "
        f"(`agentflow instances --status waiting` shows which do)")


async def _act(args: argparse.Namespace, action: str) -> str | None:
    """Do ``action``; returns a note to print when no worker will run its effect."""
    if action == "restart" and getattr(args, "upgrade", False):
        from agentflow.cli._author import flow_client, restart_upgrade

        async with flow_client(args) as flow:  # the plan layer knows plan versions
            await restart_upgrade(flow, args.id, args.from_step)
            return await no_worker_note(flow.engine.store, args.id)
    async with client(args, writes=True) as engine:
        inst = await engine.get_instance(args.id)
        if action == "send-event":
            payload = parse_payload(args.payload)
            policy = await OperatorPolicy(engine.store).read()
            check_decision_payload(args.type, payload, policy.human_only)
            await inst.send_event(args.type, payload)
        elif action == "restart":
            await inst.restart(args.from_step, by=default_actor("cli"))
        else:
            await getattr(inst, action)()
        if action in ("send-event", "approve", "reject", "resume", "restart"):
            return await no_worker_note(engine.store, inst.id)
        return None


# What the library's errors advise, as a person at the command line does it.
_CLI_ADVICE = {"Use restart() to run it again": "Run `agentflow restart {id}` to run it again"}


def in_cli_words(exc: InvalidStateError, instance_id: str) -> InvalidStateError:
    """``exc`` with advice to call a Python method turned into the command to run."""
    message = str(exc)
    for python, command in _CLI_ADVICE.items():
        message = message.replace(python, command.format(id=instance_id))
    return InvalidStateError(message)


def control(action: str) -> Any:
    async def run(args: argparse.Namespace) -> int:
        try:
            note = await _act(args, action)
        except InvalidStateError as exc:
            raise in_cli_words(exc, args.id) from None
        done = {"send-event": f"sent {getattr(args, 'type', '')!r} to",
                "approve": "approved", "reject": "rejected", "pause": "paused",
                "resume": "resumed", "terminate": "terminated", "restart": "restarted"}
        if getattr(args, "json", False):
            emit_json({"id": args.id, "action": action, "ok": True,
                       **({"worker_running": False, "note": note} if note else {})})
        else:
            print(f"{done[action]} {args.id}")
        if note:
            print(f"agentflow: {note}", file=sys.stderr)
        return EXIT_OK
    return run


async def doctor(args: argparse.Namespace) -> int:
    from sandbox import doctor as sandbox_doctor

    layers = sandbox_doctor()
    if args.json:
        emit_json([{"layer": s.name, "available": s.available, "detail": s.detail}
                   for s in layers])
    else:
        table = Table("layer", "available", "detail")
        for s in layers:
            table.add_row(s.name, Text("yes") if s.available else Text("NO", style="red"),
                          literal(s.detail))
        out(args).print(table)
        from agentflow import Quotas

        quotas = Table("quota (per agent, run or instance)", "default",
                       title="tenant quotas: an operator sets them with "
                             "AgentFlow(..., quotas=Quotas(name=value))")
        for name, value in Quotas().as_dict().items():
            quotas.add_row(name, f"{value:,}")
        out(args).print(quotas)
    return EXIT_OK if all(s.available for s in layers) else EXIT_FAILED
