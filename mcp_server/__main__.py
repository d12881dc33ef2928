"""``agentflow-mcp`` (also ``python -m mcp_server``): serve agentflow over MCP.

stdio (the default) serves one agent, named by ``--agent`` or ``$AGENTFLOW_AGENT``.
``--http HOST:PORT`` serves streamable HTTP at ``/mcp``; bearer tokens name the agents
(``--token TOKEN=AGENT``, repeatable, or ``$AGENTFLOW_MCP_TOKENS='{"TOKEN": "AGENT"}'``,
which keeps tokens out of the process list). A request without a valid token gets 401.

While it runs, the server's engine drives due instances; an ``agentflow worker`` on the
same database keeps them going between sessions. ``--app module:attribute`` gives this
process the host's capability grants (an `AgentFlow` whose agents have them) and
workflows (an `Engine`), as ``agentflow worker --app`` does: every process that runs
plans needs the same grants. ``--no-run`` makes the server steer only, leaving the
running to workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agentflow import Engine
from agentflow.errors import AgentflowError, UsageError
from agentflow.plans import AgentFlow, adopt_apps, load_app
from agentflow.policy import ALWAYS_HUMAN_ONLY, OperatorPolicy, default_actor
from agentflow.store import default_url
from mcp_server._config import ServerConfig, parse_tokens
from mcp_server._server import build_server

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentflow-mcp",
        description="Serve agentflow's tools (author, run and steer durable plans) over MCP.")
    parser.add_argument("--agent", metavar="ID",
                        help="the agent served on stdio (default: $AGENTFLOW_AGENT)")
    parser.add_argument("--http", metavar="HOST:PORT",
                        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=AGENT",
                        help="with --http: a bearer token and the agent it names (repeatable;"
                             " also $AGENTFLOW_MCP_TOKENS as a JSON object)")
    parser.add_argument("--db", metavar="URL",
                        help="database URL (default: $AGENTFLOW_DB, else sqlite:///agentflow.db)")
    parser.add_argument("--isolation", choices=["process", "inline"], default="process",
                        help="process: each agent's plans run in a confined worker (default); "
                             "inline: in this process, NOT a security boundary")
    parser.add_argument("--human-only", action="append", default=[], metavar="TYPE",
                        help="make an event type human-only, besides 'approval' "
                             "(repeatable). This WRITES the database's policy, which every "
                             "front end on the database obeys (`agentflow policy` shows "
                             "and changes it)")
    parser.add_argument("--app", action="append", default=[], metavar="MODULE:ATTR",
                        help="an AgentFlow whose agents' capability grants apply here, or "
                             "an Engine whose workflows run here (repeatable)")
    parser.add_argument("--no-run", action="store_true",
                        help="steer only: run no instances here (agentflow worker does)")
    return parser


@dataclass(frozen=True)
class Options:
    db: str
    isolation: Literal["process", "inline"]
    config: ServerConfig
    http: tuple[str, int] | None
    apps: tuple[Engine | AgentFlow, ...] = ()
    run: bool = True


def parse_http(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--http {value!r} must look like HOST:PORT, e.g. 127.0.0.1:8765")
    return host, int(port)


def options(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> Options:
    """Check the command line against the environment.

    Raises:
        UsageError: a combination that cannot work, with what to do instead.
    """
    http = parse_http(args.http) if args.http else None
    human_only = frozenset(args.human_only)
    if http is None:
        if args.token:
            raise UsageError("--token applies to --http; on stdio, --agent names the agent")
        agent = args.agent or env.get("AGENTFLOW_AGENT")
        if not agent:
            raise UsageError("name the agent this server acts for: --agent ID or "
                             "$AGENTFLOW_AGENT")
        config = ServerConfig(agent_id=agent, human_only=human_only)
    else:
        if args.agent:
            raise UsageError("--agent applies to stdio; over --http each bearer token names "
                             "its agent (--token TOKEN=AGENT)")
        tokens = parse_tokens(args.token, env.get("AGENTFLOW_MCP_TOKENS"))
        if not tokens:
            raise UsageError("--http needs at least one bearer token: --token TOKEN=AGENT or "
                             "$AGENTFLOW_MCP_TOKENS='{\"TOKEN\": \"AGENT\"}'")
        config = ServerConfig(tokens=tokens, human_only=human_only)
    if args.no_run and args.app:
        raise UsageError("--app gives grants to the plans this server runs, and --no-run "
                         "runs none: give --app to the workers instead")
    return Options(db=args.db or env.get("AGENTFLOW_DB") or default_url(),
                   isolation=args.isolation, config=config, http=http,
                   apps=tuple(load_app(spec) for spec in args.app), run=not args.no_run)


async def write_human_only(af: AgentFlow, config: ServerConfig) -> None:
    """``--human-only``: a flag lives in one process, so it adds its types to the
    database's policy, where every front end on the database sees them, and says so."""
    added = sorted(config.human_only - ALWAYS_HUMAN_ONLY)
    if not added:
        return
    policy = OperatorPolicy(af.engine.store)
    for event_type in added:
        await policy.add_human_only(event_type, by=default_actor("agentflow-mcp --human-only"))
    print(f"agentflow-mcp: --human-only wrote {', '.join(map(repr, added))} into the "
          f"database's human-only policy: every front end on this database now refuses "
          f"them to agents (`agentflow policy` shows it; `agentflow policy human-only "
          f"remove TYPE` undoes it)", file=sys.stderr, flush=True)


async def serve(opts: Options) -> None:
    """Run the server until stdin closes (stdio) or a signal arrives."""
    af = AgentFlow(opts.db, isolation=opts.isolation, run_scheduler=opts.run)
    adopt_apps(af, opts.apps)
    if opts.http is None:
        server = build_server(af, opts.config)
        stop = asyncio.Event()
        received: list[signal.Signals] = []

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, on_signal, sig)
        async with af:
            await write_human_only(af, opts.config)
            print(f"agentflow-mcp: agent {opts.config.agent_id!r} on stdio, database "
                  f"{opts.db}, isolation {opts.isolation}"
                  f"{'' if opts.run else ', steering only'}", file=sys.stderr, flush=True)
            serving = asyncio.create_task(server.run_stdio_async())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if serving.done():
                serving.result()  # stdin closed (or the transport failed: say so)
                return
            serving.cancel()  # its read of stdin blocks in a thread, which cannot be
        # interrupted: the store and the workers are closed now, so end the process here
        # rather than wait for input that may never come.
        sys.stderr.flush()
        os._exit(130 if received[:1] == [signal.SIGINT] else 0)
    host, port = opts.http
    server = build_server(af, opts.config, host=host, port=port)
    # uvicorn stops gracefully on SIGINT/SIGTERM and then re-raises the signal with the
    # handler it found; a no-op handler lets `async with af` close the store afterwards.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    async with af:
        await write_human_only(af, opts.config)
        print(f"agentflow-mcp: http://{host}:{port}/mcp for agents "
              f"{sorted(set(opts.config.tokens.values()))}, database {opts.db}, isolation "
              f"{opts.isolation}", file=sys.stderr, flush=True)
        await server.run_streamable_http_async(host=host, port=port)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script. Exit codes: 0 stopped, 1 failed, 2 bad usage."""
    args = build_parser().parse_args(argv)
    try:
        opts = options(args, os.environ)
    except AgentflowError as exc:
        print(f"agentflow-mcp: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(opts))
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # uvicorn's way to fail, e.g. on a port already in use
        if exc.code in (0, None):
            return 0
        print(f"agentflow-mcp: could not serve HTTP on {args.http} (its reason is above)",
              file=sys.stderr)
        return 1
    except (AgentflowError, OSError) as exc:
        print(f"agentflow-mcp: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
