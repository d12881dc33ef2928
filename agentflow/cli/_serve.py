"""``agentflow serve``: one long-running process that drives instances (as ``agentflow
worker`` does), serves the operator's console, and optionally the MCP server over
streamable HTTP on the same port at ``/mcp``.

It listens on loopback (127.0.0.1:8080) by default. Bound to any other address without
TLS (``--certfile``/``--keyfile``), it warns: sessions and approval links would cross
the network in clear text; put it behind a reverse proxy that terminates TLS (see the
README) and pass ``--secure-cookies``.

Operators sign in with their own tokens: ``--operator NAME=TOKEN`` (``:read-only``
appended for a role that may only look), or ``$AGENTFLOW_CONSOLE_OPERATORS`` holding
the same specs separated by whitespace (this keeps tokens out of the process list).
They are not the agents' MCP tokens (``--token TOKEN=AGENT`` with ``--mcp``).

SIGTERM or SIGINT stops it gracefully: open pages are disconnected, running steps reach
their next boundary and the worker hands its claims back, as ``agentflow worker`` does.

The MCP server is the one place where ``agentflow`` reaches ``mcp_server``: this
command composes both, imported only when ``--mcp`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentflow._apps import adopt_apps, load_app
from agentflow.cli._worker import without_password
from agentflow.errors import UsageError

ASGI = Callable[[Any, Any, Any], Awaitable[None]]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="where to serve the console (default 127.0.0.1:8080, loopback only)")
    p.add_argument("--operator", action="append", default=[], metavar="NAME=TOKEN[:read-only]",
                   help="a person who may sign in (repeatable; also "
                        "$AGENTFLOW_CONSOLE_OPERATORS, specs separated by spaces)")
    p.add_argument("--mcp", action="store_true",
                   help="also serve the MCP server (streamable HTTP) at /mcp")
    p.add_argument("--token", action="append", default=[], metavar="TOKEN=AGENT",
                   help="with --mcp: an agent's bearer token (repeatable; also "
                        "$AGENTFLOW_MCP_TOKENS as a JSON object)")
    p.add_argument("--human-only", action="append", default=[], metavar="TYPE",
                   help="an event type only a person may send, besides 'approval'")
    p.add_argument("--app", action="append", default=[], metavar="MODULE:OBJECT",
                   help="also run an Engine's workflows or use an AgentFlow's grants "
                        "(repeatable), as agentflow worker --app")
    p.add_argument("--isolation", choices=["process", "inline"], default="process",
                   help="how agent plans run (inline is NOT a security boundary)")
    p.add_argument("--no-run", action="store_true",
                   help="serve only: run no instances here (an agentflow worker does)")
    p.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    p.add_argument("--secure-cookies", action="store_true",
                   help="mark the session cookie Secure (implied by --certfile; set it "
                        "behind a TLS-terminating proxy)")
    p.add_argument("--keep-changes", type=float, default=7.0, metavar="DAYS",
                   help="trim the change feed of changes older than this, hourly "
                        "(default 7 days; a subscriber away longer resumes at the oldest kept)")
    p.add_argument("--public-url", metavar="URL",
                   help="the URL people reach the console at, for approval links "
                        "(default: the URL of the request)")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {value!r} must look like HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dispatch:
    """One port, two apps: ``/mcp`` (and the OAuth metadata under ``/.well-known/``)
    go to the MCP server, everything else to the console. The MCP app's lifespan (its
    session manager) is the lifespan of the whole."""

    def __init__(self, console: ASGI, mcp: ASGI) -> None:
        self.console, self.mcp = console, mcp

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "lifespan" or path == "/mcp" or path.startswith(
                ("/mcp/", "/.well-known/")):
            await self.mcp(scope, receive, send)
        else:
            await self.console(scope, receive, send)


async def _trim_changes(flow: Any, keep_seconds: float, every: float = 3600.0) -> None:
    """Keep the change feed and the console's records from growing without end:
    hourly, drop changes older than ``keep_seconds`` (wall time, as the feed records
    it) and the records of used approval links that have expired."""
    from agentflow.console._data import prune_used_links

    while True:
        try:
            await flow.engine.store.trim_changes(time.time() - keep_seconds)
            await prune_used_links(flow.engine.store, time.time())
        except Exception as exc:  # the next round tries again; say why meanwhile
            print(f"agentflow serve: trimming the change feed failed: {exc}",
                  file=sys.stderr, flush=True)
        await asyncio.sleep(every)


async def _write_human_only(flow: Any, types: frozenset[str]) -> None:
    """``--human-only``: a flag lives in one process, so its types go into the
    database's policy, which every front end on the database obeys (as agentflow-mcp
    does)."""
    from agentflow.policy import ALWAYS_HUMAN_ONLY, OperatorPolicy, default_actor

    added = sorted(types - ALWAYS_HUMAN_ONLY)
    policy = OperatorPolicy(flow.engine.store)
    for event_type in added:
        await policy.add_human_only(event_type,
                                    by=default_actor("agentflow serve --human-only"))
    if added:
        print(f"agentflow serve: --human-only wrote {', '.join(map(repr, added))} into the "
              "database's human-only policy (`agentflow policy` shows it)",
              file=sys.stderr, flush=True)


async def run(args: argparse.Namespace) -> int:
    import uvicorn

    from agentflow.console import ConsoleConfig, create_app, parse_operators
    from agentflow.plans import AgentFlow

    host, port = parse_listen(args.listen)
    specs = list(args.operator) + os.environ.get("AGENTFLOW_CONSOLE_OPERATORS", "").split()
    try:
        operators = parse_operators(specs)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not operators:
        raise UsageError("nobody could sign in: give --operator NAME=TOKEN (or "
                         "$AGENTFLOW_CONSOLE_OPERATORS)")
    if bool(args.certfile) != bool(args.keyfile):
        raise UsageError("--certfile and --keyfile go together")
    if args.token and not args.mcp:
        raise UsageError("--token gives agents access to /mcp: add --mcp")
    if args.no_run and args.app:
        raise UsageError("--app gives grants to the plans this process runs, and --no-run "
                         "runs none: give --app to the workers instead")
    secret = os.environ.get("AGENTFLOW_CONSOLE_SECRET")
    if secret is not None and len(secret.encode()) < 32:
        raise UsageError("$AGENTFLOW_CONSOLE_SECRET must be at least 32 bytes")
    tls = bool(args.certfile)
    flow = AgentFlow(args.db, isolation=args.isolation, run_scheduler=not args.no_run)
    adopt_apps(flow, [load_app(spec) for spec in args.app])
    config = ConsoleConfig(operators=operators,
                           secret=secret.encode() if secret else None,
                           human_only=frozenset(args.human_only),
                           secure_cookies=tls or args.secure_cookies,
                           public_url=args.public_url)
    app: ASGI = create_app(flow, config)
    if args.mcp:
        from mcp_server import ServerConfig, build_server, parse_tokens

        tokens = parse_tokens(args.token, os.environ.get("AGENTFLOW_MCP_TOKENS"))
        if not tokens:
            raise UsageError("--mcp needs at least one agent token: --token TOKEN=AGENT or "
                             "$AGENTFLOW_MCP_TOKENS='{\"TOKEN\": \"AGENT\"}'")
        server = build_server(flow, ServerConfig(tokens=tokens,
                                                 human_only=frozenset(args.human_only)),
                              host=host, port=port)
        app = Dispatch(app, server.streamable_http_app())
    if not is_loopback(host) and not tls:
        print(f"agentflow serve: WARNING: listening on {host} without TLS; sign-in tokens, "
              "sessions and approval links cross the network in clear text. Serve behind "
              "a TLS-terminating reverse proxy (and pass --secure-cookies), or give "
              "--certfile/--keyfile.", file=sys.stderr, flush=True)
    server_config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                   ssl_certfile=args.certfile, ssl_keyfile=args.keyfile,
                                   timeout_graceful_shutdown=3, lifespan="auto")
    # uvicorn stops gracefully on SIGINT/SIGTERM and then re-raises the signal with the
    # handler it found; a no-op handler lets `async with flow` close the store after it.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    async with flow:
        await _write_human_only(flow, frozenset(args.human_only))
        scheme = "https" if tls else "http"
        print(f"agentflow serve: console at {scheme}://{host}:{port}/"
              f"{f' and MCP at {scheme}://{host}:{port}/mcp' if args.mcp else ''}, "
              f"database {without_password(args.db)}"
              f"{', serving only' if args.no_run else ''}", file=sys.stderr, flush=True)
        uv = uvicorn.Server(server_config)
        trimming = asyncio.create_task(_trim_changes(flow, args.keep_changes * 86400))
        try:
            await uv.serve()
        except SystemExit:  # uvicorn's way to fail, e.g. on a port already in use
            uv.started = False
        finally:
            trimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trimming
        if not uv.started:
            raise OSError(f"could not serve on {host}:{port} (the reason is above)")
    print("agentflow serve stopped", file=sys.stderr, flush=True)
    return 0
