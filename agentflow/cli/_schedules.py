"""``agentflow schedules``: list, add, pause, resume and delete schedules, and show the
next fire times. A schedule of an agent's plan takes ``--agent`` and ``--plan``; one of
a trusted workflow takes ``--workflow`` (the worker that fires it needs only the
database; the one that runs its instances needs the workflow, through ``--app``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.table import Table

from agentflow._schedules import describe_next
from agentflow.cli._author import flow_client, read_params
from agentflow.cli._db import client
from agentflow.cli._exits import EXIT_OK
from agentflow.cli._text import literal, printable
from agentflow.cli._time import iso
from agentflow.cli._workers import no_worker_note
from agentflow.errors import InvalidArgumentError

__all__ = ["add_commands"]

Add = Callable[[str, str], argparse.ArgumentParser]


def add_commands(add: Add, with_json: Callable[[argparse.ArgumentParser],
                                                argparse.ArgumentParser]) -> None:
    top = with_json(add("schedules", "list schedules (and add, pause, resume, delete them: "
                                     "`agentflow schedules add --help`)"))
    top.add_argument("--agent", help="only this agent's schedules")
    top.set_defaults(handler=list_schedules, action=None)
    acts = top.add_subparsers(dest="action", metavar="ACTION")

    def act(name: str, help: str) -> argparse.ArgumentParser:
        p = acts.add_parser(name, help=help, description=help)
        p.add_argument("--db", default=argparse.SUPPRESS, metavar="URL",
                       help="database URL (default: $AGENTFLOW_DB, else "
                            "sqlite:///agentflow.db)")
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print JSON for scripts")
        return p

    p = act("list", "list schedules with their next fire time")
    p.add_argument("--agent", help="only this agent's schedules")
    p.set_defaults(handler=list_schedules)

    p = act("add", "schedule an agent's plan (--agent, --plan) or a trusted workflow "
                   "(--workflow) on --cron or --every")
    p.add_argument("name", help="the schedule's name (unique per agent)")
    p.add_argument("--agent", help="the agent whose plan it starts")
    p.add_argument("--plan", help="the plan it starts (with --agent)")
    p.add_argument("--workflow", help="the trusted workflow it starts (without --agent)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="five cron fields, e.g. '0 7 * * mon-fri'")
    when.add_argument("--every", help="an interval, e.g. '15 minutes'")
    p.add_argument("--tz", default="UTC", help="the time zone of --cron and of naive "
                                               "--start/--end (default UTC)")
    p.add_argument("--start", help="no fire before this ISO date-time")
    p.add_argument("--end", help="no fire after this ISO date-time")
    p.add_argument("--params", metavar="JSON|@FILE", help="each instance's params")
    p.add_argument("--overlap", choices=["skip", "buffer_one", "allow"], default="skip",
                   help="while the previous fire's instance runs (default skip)")
    p.add_argument("--catchup", choices=["latest", "all", "none"], default="latest",
                   help="fires missed while no worker ran (default latest)")
    p.add_argument("--replace", action="store_true", help="replace a schedule of that name")
    p.set_defaults(handler=add_schedule)

    for verb in ("pause", "resume", "delete"):
        p = act(verb, f"{verb} a schedule")
        p.add_argument("name")
        p.add_argument("--agent", help="the agent the schedule belongs to")
        p.set_defaults(handler=control(verb))

    p = act("next", "the next fire times of a schedule")
    p.add_argument("name")
    p.add_argument("--agent", help="the agent the schedule belongs to")
    p.add_argument("--count", type=int, default=5)
    p.set_defaults(handler=next_times)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


async def list_schedules(args: argparse.Namespace) -> int:
    async with client(args) as engine:
        schedules = await engine.schedules.list(scope=args.agent)
    if getattr(args, "json", False):
        _print_json([s.model_dump(mode="json") for s in schedules])
        return EXIT_OK
    from agentflow.cli._ops import out

    table = Table("agent", "name", "starts", "when", "next fire", "last instance",
                  "skipped fires")
    for s in schedules:
        when = f"cron {s.cron} {s.timezone}" if s.cron else f"every {s.every:g}s"
        table.add_row(*map(literal, (s.agent or "", s.name, s.plan or s.workflow, when,
                                     describe_next(s), s.last_instance_id or "",
                                     str(s.skipped_fires))))
    console = out(args)
    console.print(table if schedules else "no schedules")
    for s in schedules:  # why a fire did not run, in full (a table cell would cut it)
        if s.last_error:
            at = s.last_error_at.strftime("%Y-%m-%d %H:%M:%S UTC") if s.last_error_at else "?"
            console.print(literal(
                f"schedule {s.name!r}" + (f" of agent {s.agent!r}" if s.agent else "")
                + f": {s.skipped_fires} fire{'s' * (s.skipped_fires != 1)} skipped; the "
                f"last at {at}: {s.last_error}"))
    return EXIT_OK


async def add_schedule(args: argparse.Namespace) -> int:
    params = read_params(args.params)
    options = {"cron": args.cron, "every": args.every, "timezone": args.tz,
               "start": args.start, "end": args.end, "params": params,
               "overlap": args.overlap, "catchup": args.catchup, "replace": args.replace}
    if args.agent:
        if not args.plan or args.workflow:
            raise InvalidArgumentError("a schedule of an agent takes --plan (the plan it "
                                       "starts), not --workflow")
        async with flow_client(args) as flow:
            sched = await flow.agent(args.agent).schedules.create(args.plan, name=args.name,
                                                                  **options)
            note = await no_worker_note(flow.engine.store)
    else:
        if not args.workflow or args.plan:
            raise InvalidArgumentError("pass --agent and --plan to schedule an agent's plan, "
                                       "or --workflow to schedule a trusted workflow")
        async with client(args, writes=True) as engine:
            sched = await engine.schedules.create(args.name, workflow=args.workflow,
                                                  **options)
            note = await no_worker_note(engine.store)
    if getattr(args, "json", False):
        _print_json(sched.model_dump(mode="json"))
    else:
        first = iso(sched.next_fire_at) if sched.next_fire_at else "never"
        print(printable(f"scheduled {args.name}: next fire {first}"))
    if note:
        print(f"agentflow: {note.replace('runs it', 'fires it')}", file=sys.stderr)
    return EXIT_OK


def control(verb: str) -> Callable[[argparse.Namespace], Any]:
    async def run(args: argparse.Namespace) -> int:
        async with client(args, writes=True) as engine:
            action = getattr(engine.schedules, verb)
            result = await action(args.name, scope=args.agent or "")
        if getattr(args, "json", False):
            _print_json(result.model_dump(mode="json") if result is not None else
                        {"name": args.name, "agent": args.agent, "deleted": True})
        else:
            print(printable(f"{verb}d schedule {args.name}" if verb != "delete" else
                            f"deleted schedule {args.name}"))
        return EXIT_OK
    return run


async def next_times(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise InvalidArgumentError(f"--count must be 1 or more, not {args.count}")
    async with client(args) as engine:
        times = await engine.schedules.next_fire_times(args.name, args.count,
                                                       scope=args.agent or "")
    if getattr(args, "json", False):
        _print_json([iso(t) for t in times])
    else:
        for t in times:
            print(iso(t))
    return EXIT_OK
