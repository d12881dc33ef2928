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

from agentflow.cli import _demo, _worker
from agentflow.errors import AgentflowError, NotFoundError, UsageError
from agentflow.store import default_url


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
    worker.add_argument("--app", action="append", default=[], metavar="MODULE:ENGINE",
                        help="import MODULE and run the workflows registered on its Engine "
                             "object ENGINE (repeatable)")
    worker.add_argument("--concurrency", type=int, default=256,
                        help="instances run at once (default 256)")
    worker.add_argument("--lease", type=float, default=30.0, metavar="SECONDS",
                        help="claim lease; a dead worker's instances move after this long")
    worker.add_argument("--poll", type=float, default=0.2, metavar="SECONDS",
                        help="how often to look for work made due by other processes")
    worker.set_defaults(handler=_worker.run)
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
