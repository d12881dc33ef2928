"""``agentflow prune``, ``agentflow delete`` and ``agentflow retention``: remove finished
instances (with their journal and events) by hand or by policy, and give the space back.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from agentflow._retention import PruneReport
from agentflow.cli._db import client
from agentflow.cli._exits import EXIT_OK
from agentflow.errors import InvalidArgumentError
from agentflow.models import TERMINAL_STATUSES

__all__ = ["add_commands"]

Add = Callable[[str, str], argparse.ArgumentParser]


def add_commands(add: Add, with_json: Callable[[argparse.ArgumentParser],
                                                argparse.ArgumentParser]) -> None:
    p = with_json(add("prune", "delete finished instances: by the retention policies, or "
                               "those matching --older-than/--status/--agent"))
    p.add_argument("--older-than", metavar="DURATION",
                   help="only instances finished longer ago than this, e.g. '30 days'")
    p.add_argument("--status", action="append", choices=sorted(TERMINAL_STATUSES),
                   help="only instances in this status (repeatable; default: all finished)")
    p.add_argument("--agent", help="only this agent's instances")
    p.add_argument("--batch", type=int, default=25,
                   help="instances deleted per transaction (default 25)")
    p.add_argument("--vacuum", action="store_true",
                   help="afterwards rewrite a SQLite file whole (VACUUM), which also "
                        "turns on incremental space reclaim for a file made before it "
                        "was the default")
    p.set_defaults(handler=prune)

    p = with_json(add("delete", "delete finished instances with their journal and events"))
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(handler=delete)

    p = with_json(add("retention", "show the retention policies, or set one with --keep"))
    p.add_argument("--keep", metavar="DURATION|none",
                   help="keep finished instances this long ('none' removes the policy)")
    p.add_argument("--agent", help="the agent the policy is for (default: everyone's "
                                   "default)")
    p.set_defaults(handler=retention)


def _report(args: argparse.Namespace, report: PruneReport) -> None:
    if args.json:
        print(json.dumps({"deleted": report.deleted, "pages_freed": report.pages_freed},
                         indent=2))
    else:
        print(f"deleted {report.deleted} finished instance(s)"
              + (f", {report.pages_freed} page(s) handed back" if report.pages_freed else ""))


async def prune(args: argparse.Namespace) -> int:
    filtered = args.older_than is not None or args.status or args.agent
    async with client(args, writes=True) as engine:
        if filtered:
            report = await engine.retention.delete_many(
                status=args.status, older_than=args.older_than, agent=args.agent,
                batch=args.batch)
        else:
            if not await engine.retention.policies():
                raise InvalidArgumentError(
                    "no retention policy is set and no filter was given, so nothing would "
                    "be deleted: pass --older-than '30 days' (and --status, --agent), or "
                    "set a policy with `agentflow retention --keep '30 days'`")
            report = await engine.retention.prune(batch=args.batch)
        if args.vacuum:
            freed = await engine.store.reclaim_space(full=True)
            report = PruneReport(report.deleted, report.pages_freed + freed)
    _report(args, report)
    return EXIT_OK


async def delete(args: argparse.Namespace) -> int:
    async with client(args, writes=True) as engine:
        for instance_id in args.ids:
            await engine.retention.delete(instance_id)
    if args.json:
        print(json.dumps({"deleted": args.ids}, indent=2))
    else:
        for instance_id in args.ids:
            print(f"deleted {instance_id}")
    return EXIT_OK


async def retention(args: argparse.Namespace) -> int:
    async with client(args, writes=args.keep is not None) as engine:
        if args.keep is not None:
            keep = None if args.keep.strip().lower() == "none" else args.keep
            await engine.retention.set_policy(keep, agent=args.agent)
        policies = await engine.retention.policies()
    if args.json:
        print(json.dumps([{"agent": a, "keep_seconds": k} for a, k in sorted(
            policies.items(), key=lambda x: x[0] or "")], indent=2))
    elif not policies:
        print("no retention policy: finished instances are kept until deleted")
    else:
        for agent, keep in sorted(policies.items(), key=lambda x: x[0] or ""):
            print(f"{agent or '(default)'}: keep finished instances {_span(keep)}")
    return EXIT_OK


def _span(seconds: float) -> str:
    """``2592000`` -> ``30 days``: the largest whole unit, else seconds."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' * (count != 1)}"
    return f"{seconds:g} seconds"
