"""``agentflow``: run the demo, run a worker, and look at what runs.

Every command takes ``--db URL`` (default ``$AGENTFLOW_DB``, else ``./agentflow.db``).
Errors are one clear line on stderr and an exit code from `agentflow.cli._exits`,
never a traceback.

Ctrl-C cancels the command. A database call can be stuck where cancelling cannot reach
it (SQLite waiting for another process's lock, in its connection's thread, which would
also keep the process alive), so a command still running `INTERRUPT_GRACE_SECONDS` after
Ctrl-C, or at a second Ctrl-C, ends the process there. Nothing is lost by that: a
change the database has not committed is not made, and one it has is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from agentflow.cli import (
    _approvals,
    _author,
    _demo,
    _ops,
    _prune,
    _schedules,
    _serve,
    _watch,
    _worker,
)
from agentflow.cli._exits import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_SIGPIPE, failure
from agentflow.models import ACTIVE_STATUSES, TERMINAL_STATUSES
from agentflow.store import default_url

STATUSES = ACTIVE_STATUSES | TERMINAL_STATUSES | {"paused"}
INTERRUPT_GRACE_SECONDS = 1.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow", description="Durable plans written by LLM agents.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version",
                        version=f"agentflow {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=EXIT_CODES_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
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

    serve = add("serve", "drive instances and serve the web console (and MCP at /mcp with "
                         "--mcp) until stopped")
    _serve.add_arguments(serve)
    serve.set_defaults(handler=_serve.run)

    watch = add("watch", "print changes to instances as they happen, from every process")
    watch.add_argument("--after", "--cursor", type=int, default=None, metavar="N",
                       help="start just after change N (0: every change kept; default: now)")
    watch.add_argument("--instance", action="append", default=[], metavar="ID",
                       help="only this instance (repeatable)")
    watch.add_argument("--agent", action="append", default=[], help="only this agent's "
                       "instances (repeatable)")
    watch.add_argument("--workflow", action="append", default=[],
                       help="only this workflow's instances (repeatable)")
    watch.add_argument("--count", type=int, default=0, metavar="N",
                       help="stop after N changes (default: run until Ctrl-C)")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.set_defaults(handler=_watch.run)

    def with_json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    p = with_json(add("plans", "list plans and their current versions"))
    p.add_argument("--agent", help="only this agent's plans")
    p.set_defaults(handler=_ops.plans)

    p = with_json(add("instances", "list instances and what each waiting one waits on"))
    p.add_argument("--agent", help="only this agent's instances")
    p.add_argument("--status", choices=sorted(STATUSES), help="only instances in this status")
    p.add_argument("--workflow", help="only instances of this workflow, or of agents' "
                                      "plans of this name")
    p.add_argument("--plan", help="only instances of agents' plans of this name")
    p.add_argument("--limit", type=int, default=100,
                   help="show at most this many, newest first (default: 100)")
    p.set_defaults(handler=_ops.instances)

    p = with_json(add("show", "status, output or error, and the timeline of an instance"))
    p.add_argument("id")
    p.set_defaults(handler=_ops.show)

    p = with_json(add("wait", "wait for an instance to finish (exit 0 complete, 1 errored or "
                              "terminated, 4 timeout, 5 waiting with --until-waiting, 6 "
                              "database unavailable)"))
    p.add_argument("id")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="give up after this long, with exit 4 (default: 60)")
    p.add_argument("--until-waiting", action="store_true",
                   help="also return when it waits for a sleep, an event or a retry, or "
                        "is paused")
    p.set_defaults(handler=_ops.wait)

    _approvals.add_parsers(add, with_json)

    p = with_json(add("send-event", "send an event to an instance"))
    p.add_argument("id")
    p.add_argument("type")
    p.add_argument("payload", nargs="?", help="JSON payload")
    p.set_defaults(handler=_ops.control("send-event"))

    for verb in ("pause", "resume", "terminate"):
        p = with_json(add(verb, f"{verb} an instance"))
        p.add_argument("id")
        p.set_defaults(handler=_ops.control(verb))

    p = with_json(add("restart", "run an instance again from the top or from a step "
                                 "(recorded with who restarted; may keep a person's decision)"))
    p.add_argument("id")
    p.add_argument("--from-step", default=None, metavar="NAME")
    p.add_argument("--upgrade", action="store_true",
                   help="move an agent plan's instance to the plan's current version first")
    p.set_defaults(handler=_ops.control("restart"))

    p = with_json(add("validate", "check a plan's source (nothing is stored); exit 1 if "
                                  "it has problems"))
    p.add_argument("file", help="the plan's source file (- reads stdin)")
    p.add_argument("--agent", help="validate for this agent")
    p.set_defaults(handler=_author.validate)

    p = with_json(add("submit", "store a plan's source as the new current version of "
                                "an agent's plan (creates the database if missing)"))
    p.add_argument("name", help="the plan's name")
    p.add_argument("file", help="the plan's source file (- reads stdin)")
    p.add_argument("--agent", required=True, help="the agent the plan belongs to")
    p.set_defaults(handler=_author.submit)

    p = with_json(add("start", "start an instance of an agent's plan at its current "
                               "version; prints its id"))
    p.add_argument("name", help="the plan's name")
    p.add_argument("--agent", required=True, help="the agent the plan belongs to")
    p.add_argument("--params", metavar="JSON|@FILE",
                   help="the params as JSON, or @FILE to read them from a file (@- stdin)")
    p.add_argument("--id", default=None, help="the instance id (default: a random uuid)")
    p.set_defaults(handler=_author.start)

    _schedules.add_commands(add, with_json)
    _prune.add_commands(add, with_json)

    p = with_json(add("doctor", "which sandbox layers this machine applies, and why not"))
    p.set_defaults(handler=_ops.doctor)
    return parser


async def _run(args: argparse.Namespace) -> int:
    """Run the command; Ctrl-C cancels it, and ends the process if that is not enough."""
    loop = asyncio.get_running_loop()
    command = asyncio.current_task()
    assert command is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: leave now
            os._exit(EXIT_INTERRUPTED)
        interrupted = True
        command.cancel()
        leave = threading.Timer(INTERRUPT_GRACE_SECONDS, os._exit, args=(EXIT_INTERRUPTED,))
        leave.daemon = True  # a command that ends in time does not wait for it
        leave.start()

    if threading.current_thread() is threading.main_thread():  # where signals arrive
        loop.add_signal_handler(signal.SIGINT, interrupt)  # the worker installs its own
    code: int = await args.handler(args)
    return code


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentflow")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _quiet_stdout() -> None:
    """After a closed pipe: send what is left to /dev/null, so that the interpreter's
    final flush does not fail again and print a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    A reader that closes the pipe early (``agentflow show ID | head -2``) ends the
    command quietly with 141 (128 + SIGPIPE), as a Unix tool killed by SIGPIPE does.
    """
    try:
        args = build_parser().parse_args(argv)
        args.db = args.db or default_url()
        code = asyncio.run(_run(args))
        sys.stdout.flush()  # a closed pipe shows here if the command printed little
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_SIGPIPE
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    except Exception as exc:
        code, line = failure(exc)
        with contextlib.suppress(BrokenPipeError):
            print(f"agentflow: {line}", file=sys.stderr)
        return code
