"""``agentflow``: run the demo, run a worker, and look at what runs.

Every command takes ``--db URL`` (default ``$AGENTFLOW_DB``, else ``./agentflow.db``).
Errors are one clear line on stderr and a non-zero exit code, never a traceback:
0 success, 1 the operation failed, 2 bad usage or input, 3 not found.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from agentflow.cli import _demo, _ops, _worker
from agentflow.errors import AgentflowError, NotFoundError, UsageError
from agentflow.models import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentflow.store import default_url

STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES | {"paused"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow", description="Durable plans written by LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--db", default=None, metavar="URL",
                       help="database URL (default: $AGENTFLOW_DB, else sqlite:///agentflow.db)")
        return p

    demo = add("demo", "run a durable workflow end to end and show its timeline")
    demo.add_argument("--name", default="Ada", help="who to greet")
    demo.set_defaults(handler=_demo.run)

    worker = add("worker", "drive due instances until stopped (SIGTERM/SIGINT stop it "
                           "gracefully)")
    worker.add_argument("--app", action="append", default=[], metavar="MODULE:OBJECT",
                        help="also run the workflows of an Engine, or the capability grants "
                             "of an AgentFlow, that MODULE defines (repeatable)")
    worker.add_argument("--isolation", choices=["process", "inline"], default="process",
                        help="how agent plans run (inline is NOT a security boundary)")
    worker.add_argument("--concurrency", type=int, default=256,
                        help="instances run at once (default 256)")
    worker.add_argument("--lease", type=float, default=30.0, metavar="SECONDS",
                        help="claim lease; a dead worker's instances move after this long")
    worker.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                        help="how often to look for work made due by other processes "
                             "(default 0.2; on PostgreSQL, which wakes workers itself, "
                             "half the lease, at most 5)")
    worker.set_defaults(handler=_worker.run)

    def with_json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    p = with_json(add("plans", "list plans and their current versions"))
    p.add_argument("--agent", help="only this agent's plans")
    p.set_defaults(handler=_ops.plans)

    p = with_json(add("instances", "list instances and what each waiting one waits on"))
    p.add_argument("--agent", help="only this agent's instances")
    p.add_argument("--status", choices=sorted(STATUSES), help="only instances in this status")
    p.add_argument("--workflow", help="only instances of this workflow")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(handler=_ops.instances)

    p = with_json(add("show", "status, output or error, and the timeline of an instance"))
    p.add_argument("id")
    p.set_defaults(handler=_ops.show)

    p = with_json(add("wait", "wait for an instance to finish (exit 0 complete, 1 errored or "
                              "terminated, 4 timeout, 5 waiting with --until-waiting)"))
    p.add_argument("id")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("--until-waiting", action="store_true",
                   help="also return when it waits for a sleep, an event or a retry")
    p.set_defaults(handler=_ops.wait)

    for verb in ("approve", "reject"):
        p = with_json(add(verb, f"{verb} as a human the approval an instance waits for now; "
                                "refused (nothing is sent) if it does not wait for one"))
        p.add_argument("id")
        p.add_argument("--comment", default="")
        p.add_argument("--type", default="approval",
                       help="the event type the instance must wait for (default approval)")
        p.set_defaults(handler=_ops.control(verb))

    p = with_json(add("send-event", "send an event to an instance"))
    p.add_argument("id")
    p.add_argument("type")
    p.add_argument("payload", nargs="?", help="JSON payload")
    p.set_defaults(handler=_ops.control("send-event"))

    for verb in ("pause", "resume", "terminate"):
        p = with_json(add(verb, f"{verb} an instance"))
        p.add_argument("id")
        p.set_defaults(handler=_ops.control(verb))

    p = with_json(add("restart", "run an instance again from the top or from a step"))
    p.add_argument("id")
    p.add_argument("--from-step", default=None, metavar="NAME")
    p.set_defaults(handler=_ops.control("restart"))

    p = with_json(add("doctor", "which sandbox layers this machine applies, and why not"))
    p.set_defaults(handler=_ops.doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.db = args.db or default_url()
    try:
        code: int = asyncio.run(args.handler(args))
        return code
    except KeyboardInterrupt:
        return 130
    except NotFoundError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 3
    except UsageError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 2
    except AgentflowError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a database that is not one, a locked file, ...
        print(f"agentflow: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
