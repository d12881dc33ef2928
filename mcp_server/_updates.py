"""Resource-updated notifications for an agent's own instances.

On the 2026-07-28 protocol a client opens a ``subscriptions/listen`` stream naming the
resources it follows (``agentflow://instances/{id}``); the SDK's `ListenHandler`
serves it over the `SubscriptionBus` given to `MCPServer`. `InstanceUpdates` is that
bus. It follows agentflow's change feed (`AgentFlow.subscribe`, so changes made by any
process on the database count) and turns each change to an agent plan's instance into
a `ResourceUpdated` for that instance's URI, delivered only to listeners of the agent
the instance belongs to. A listener of another agent that names the same URI is
acknowledged like any URI and never hears of it: nothing tells it the instance exists.

On 2025-11-25, ``resources/subscribe`` names one URI per request on the session's
standing stream; `InstanceUpdates.serve_legacy` registers those handlers, which
subscribe a listener for that session with the same rule, and send
``notifications/resources/updated``. ``MCPServer`` has no public way to add a spec
request handler, so that one call reaches its lowlevel server.

The feed is followed only while someone listens, from the position it had when the
first listener arrived; the SDK's streams have no replay (a client that reconnects
re-listens and reads the resource again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import anyio.lowlevel
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated, ServerEvent

from agentflow.plans import PLAN_WORKFLOW, AgentFlow
from mcp_server._identity import Identity

__all__ = ["INSTANCE_URI", "InstanceUpdates"]

log = logging.getLogger("agentflow.mcp")
INSTANCE_URI = "agentflow://instances/{id}"

Listener = Callable[[ServerEvent], None]


class InstanceUpdates:
    """A `SubscriptionBus` that knows which agent each listener acts for.

    ``subscribe`` is called by the SDK inside the ``subscriptions/listen`` request, so
    the caller's identity (its bearer token, or the stdio agent) is known there.
    """

    def __init__(self, af: AgentFlow, identity: Identity, *, poll: float = 0.1) -> None:
        self._af = af
        self._identity = identity
        self._poll = poll
        self._listeners: dict[object, tuple[str, Listener]] = {}
        self._follower: asyncio.Task[None] | None = None
        self._legacy: dict[tuple[int, str], Callable[[], None]] = {}
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, event: ServerEvent) -> None:
        """A server-wide event (a list changed): every listener may hear it."""
        for _, listener in list(self._listeners.values()):
            _deliver(listener, event)
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        agent_id = self._identity.agent_id()  # raises for a caller with no agent
        token = object()
        self._listeners[token] = (agent_id, listener)
        if self._follower is None or self._follower.done():
            self._follower = asyncio.get_running_loop().create_task(
                self._follow(), name="agentflow-mcp-updates")

        def unsubscribe() -> None:
            self._listeners.pop(token, None)
            if not self._listeners and self._follower is not None:
                self._follower.cancel()
                self._follower = None

        return unsubscribe

    async def _follow(self) -> None:
        try:
            async for change in self._af.engine.subscribe(workflows=[PLAN_WORKFLOW],
                                                          poll=self._poll):
                event = ResourceUpdated(uri=INSTANCE_URI.format(id=change.instance_id))
                for agent_id, listener in list(self._listeners.values()):
                    if agent_id == change.agent:
                        _deliver(listener, event)
        except asyncio.CancelledError:
            raise
        except Exception:  # the store went away: listeners hear nothing more, say why
            log.exception("following the change feed for MCP listeners failed")

    # -- 2025-11-25: resources/subscribe and resources/unsubscribe -----------------------
    def serve_legacy(self, server: MCPServer) -> None:
        """Serve ``resources/subscribe`` and ``resources/unsubscribe`` on ``server``."""
        lowlevel = server._lowlevel_server  # no public way to add a spec method's handler
        lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams,
                                     self._legacy_subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams,
                                     self._legacy_unsubscribe)

    async def _legacy_subscribe(self, ctx: ServerRequestContext[Any, Any],
                                params: types.SubscribeRequestParams) -> types.EmptyResult:
        session, uri = ctx.session, str(params.uri)
        key = (id(session), uri)
        if key not in self._legacy:
            loop = asyncio.get_running_loop()

            def listener(event: ServerEvent) -> None:
                if isinstance(event, ResourceUpdated) and event.uri == uri:
                    task = loop.create_task(self._send_legacy(key, session, uri))
                    self._sending.add(task)
                    task.add_done_callback(self._sending.discard)

            self._legacy[key] = self.subscribe(listener)
        return types.EmptyResult()

    async def _legacy_unsubscribe(self, ctx: ServerRequestContext[Any, Any],
                                  params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        unsubscribe = self._legacy.pop((id(ctx.session), str(params.uri)), None)
        if unsubscribe is not None:
            unsubscribe()
        return types.EmptyResult()

    async def _send_legacy(self, key: tuple[int, str], session: Any, uri: str) -> None:
        try:
            await session.send_resource_updated(uri)
        except Exception:  # the session is gone: forget its subscriptions
            unsubscribe = self._legacy.pop(key, None)
            if unsubscribe is not None:
                unsubscribe()

    async def aclose(self) -> None:
        """Stop following the feed (the server is shutting down)."""
        task, self._follower = self._follower, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _deliver(listener: Listener, event: ServerEvent) -> None:
    try:
        listener(event)
    except Exception:  # fan-out boundary, as in the SDK's own bus
        log.exception("an MCP listener raised; continuing")
