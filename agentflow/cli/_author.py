"""Authoring from the shell: ``validate``, ``submit``, ``start`` and ``restart --upgrade``.

They act as the operator on one agent's behalf (``--agent``): the plan is validated,
stored and started exactly as `Agent.validate`, `Agent.submit_plan` and `Agent.start`
do, on an `AgentFlow` that runs nothing (a worker runs the plans).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentflow.cli._db import existing_store, wait_for_write_lock
from agentflow.cli._exits import EXIT_FAILED, EXIT_OK
from agentflow.cli._text import printable
from agentflow.cli._time import iso
from agentflow.errors import InvalidArgumentError, NotFoundError
from agentflow.policy import default_actor

if TYPE_CHECKING:
    from agentflow.plans import Agent, AgentFlow

__all__ = ["flow_client", "read_params", "restart_upgrade", "start", "submit", "validate"]


def read_text(path: str, what: str) -> str:
    """The text of ``path`` (``-`` reads stdin), or a one-line error."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"no {what} file at {path!r}") from None
    except IsADirectoryError:
        raise InvalidArgumentError(f"{path!r} is a folder; pass the {what} file") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"{path!r} is not UTF-8 text ({exc.reason} at byte "
                                   f"{exc.start})") from None


def read_params(text: str | None) -> Any:
    """``--params``: JSON text, or ``@FILE`` holding JSON (``@-`` reads stdin)."""
    if text is None:
        return None
    where = "--params"
    if text.startswith("@"):
        where = f"the params file {text[1:]!r}"
        text = read_text(text[1:], "params")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}"
                                   f" column {exc.colno}); e.g. --params '{{\"n\": 1}}' or "
                                   "--params @params.json") from None
    except RecursionError:
        raise InvalidArgumentError(f"{where} is nested too deeply to read") from None


@asynccontextmanager
async def flow_client(args: argparse.Namespace, *, create: bool = False
                      ) -> AsyncIterator[AgentFlow]:
    """An `AgentFlow` on ``args.db`` that runs nothing and never claims.

    Args:
        create: the command may create the database (``submit``: the first thing a new
            user does); otherwise it must exist already.
    """
    from agentflow.plans import AgentFlow

    if not create:
        await existing_store(args.db)  # refuses a missing or foreign database first
    # `inline`: nothing runs here, so no sandbox worker is ever started.
    flow = AgentFlow(args.db, isolation="inline", run_scheduler=False)
    await flow.start()
    try:
        await wait_for_write_lock(flow.engine.store)
        yield flow
    finally:
        await flow.close()


def _agent(flow: AgentFlow, args: argparse.Namespace) -> Agent:
    return flow.agent(args.agent)


async def validate(args: argparse.Namespace) -> int:
    """Print each diagnostic as ``FILE:LINE:COL: CODE message`` with its fix; exit 1 if
    there is any. Nothing is stored and no database is opened."""
    from agentflow.plans import AgentFlow

    source = read_text(args.file, "plan")
    if args.agent:
        # Validation for an agent knows its grants (when the AgentFlow does).
        report = AgentFlow("memory://", isolation="inline", run_scheduler=False).agent(
            args.agent).validate(source)
    else:
        from sandbox import validate as validate_source

        report = validate_source(source)
    if args.json:
        print(json.dumps({"file": args.file, "ok": report.ok, "diagnostics": [
            {"line": d.line, "col": d.col, "code": d.code, "message": d.message,
             "hint": d.hint} for d in report.diagnostics]}, indent=2))
    else:
        for d in report.diagnostics:
            print(printable(f"{args.file}:{d.line}:{d.col}: {d.code} {d.message}"))
            print(printable(f"    fix: {d.hint}"))
        print(f"{args.file}: ok" if report.ok else
              f"{args.file}: {len(report.diagnostics)} problem(s)", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


async def submit(args: argparse.Namespace) -> int:
    """Store FILE as a new version of plan NAME of ``--agent``; an invalid plan is refused
    with its diagnostics (exit 2) and nothing is stored."""
    from sandbox import PlanValidationError

    source = read_text(args.file, "plan")
    async with flow_client(args, create=True) as flow:
        try:
            version = await _agent(flow, args).submit_plan(args.name, source)
        except PlanValidationError as exc:
            for d in exc.report.diagnostics:
                print(printable(f"{args.file}:{d.line}:{d.col}: {d.code} {d.message}"),
                      file=sys.stderr)
            raise InvalidArgumentError(f"plan {args.name!r} was not stored: {args.file} has "
                                       f"{len(exc.report.diagnostics)} problem(s) "
                                       f"(`agentflow validate {args.file}` lists them)"
                                       ) from None
    if args.json:
        print(json.dumps({"agent": args.agent, "name": version.name,
                          "version": version.version,
                          "created_at": iso(version.created_at)}, indent=2))
    else:
        print(printable(f"submitted {args.agent}/{version.name}@{version.version}"))
    return EXIT_OK


async def start(args: argparse.Namespace) -> int:
    """Start plan NAME of ``--agent`` at its current version, with ``--params``."""
    from agentflow.cli._workers import no_worker_note

    params = read_params(args.params)
    async with flow_client(args) as flow:
        inst = await _agent(flow, args).start(args.name, params, id=args.id)
        note = await no_worker_note(flow.engine.store, inst.id)
    if args.json:
        print(json.dumps({"id": inst.id, "agent": args.agent, "plan": inst.plan,
                          "version": inst.version, "worker_running": note is None},
                         indent=2))
    else:
        print(inst.id)
    if note:
        print(f"agentflow: {note}", file=sys.stderr)
    return EXIT_OK


async def restart_upgrade(flow: AgentFlow, instance_id: str, from_step: str | None) -> str:
    """Restart an agent's instance moved to its plan's current version; returns it.

    Raises:
        InvalidArgumentError: the instance is not an agent plan's (a trusted workflow
            has no versions to move to).
    """
    from agentflow.plans import PLAN_WORKFLOW

    row = await flow.engine.store.get_instance(instance_id)
    if row is None:
        from agentflow.errors import InstanceNotFoundError
        raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
    if row.workflow != PLAN_WORKFLOW or not row.scope:
        raise InvalidArgumentError(f"instance {instance_id!r} runs the workflow "
                                   f"{row.workflow!r}, not an agent's plan: --upgrade moves "
                                   "a plan's instance to the plan's current version")
    inst = await flow.agent(row.scope).get(instance_id)
    await inst.restart(from_step, upgrade=True, by=default_actor("cli"))
    return inst.version
