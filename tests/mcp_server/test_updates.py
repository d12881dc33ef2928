"""Resource-updated notifications over ``subscriptions/listen`` (2026-07-28): an agent
hears about its own instances, from changes made in any process, and never about
another agent's."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated

from agentflow import AgentFlow
from mcp_server import ServerConfig, build_server
from tests.mcp_server.conftest import APPROVAL_PLAN


async def _updates_until(sub: Any, uri: str, seen: list[str], timeout: float = 60) -> None:
    """Read ``sub`` into ``seen`` until an update of ``uri`` arrives."""
    async def read() -> None:
        async for event in sub:
            if isinstance(event, ResourceUpdated):
                seen.append(event.uri)
                if event.uri == uri:
                    return
        raise AssertionError("the listen stream ended")
    await asyncio.wait_for(read(), timeout)


async def test_an_agent_hears_of_its_own_instances_only(af: AgentFlow) -> None:
    alice, mallory = af.agent("alice"), af.agent("mallory")
    await alice.submit_plan("p", APPROVAL_PLAN)
    await mallory.submit_plan("p", APPROVAL_PLAN)
    mine = await alice.start("p", params={"numbers": [1]})
    theirs = await mallory.start("p", params={"numbers": [2]})
    await alice.wait(mine.id, timeout=30)
    await mallory.wait(theirs.id, timeout=30)
    uri_mine = f"agentflow://instances/{mine.id}"
    uri_theirs = f"agentflow://instances/{theirs.id}"
    async with Client(build_server(af, ServerConfig(agent_id="alice"))) as a, Client(
            build_server(af, ServerConfig(agent_id="mallory"))) as m:
        assert a.protocol_version == "2026-07-28"
        async with a.listen(resource_subscriptions=[uri_mine]) as sub_a, m.listen(
                resource_subscriptions=[uri_mine, uri_theirs]) as sub_m:
            # Mallory names alice's instance too: acknowledged like any URI, so the
            # answer tells it nothing about which ids exist.
            assert sorted(sub_m.honored.resource_subscriptions or []) == sorted(
                [uri_mine, uri_theirs])
            # Alice's instance moves (the host answers it, as any process could).
            await alice.send_event(mine.id, "approval", {"approved": True})
            seen_a: list[str] = []
            await _updates_until(sub_a, uri_mine, seen_a)
            assert (await alice.wait(mine.id, timeout=30)).status == "complete"
            # Then mallory's moves. The feed is delivered in order, so once mallory
            # hears of its own instance, every change to alice's before it has been
            # passed over for mallory.
            await mallory.send_event(theirs.id, "approval", {"approved": False})
            await mallory.wait(theirs.id, timeout=30)
            await mallory.restart(theirs.id)
            seen_m: list[str] = []
            await _updates_until(sub_m, uri_theirs, seen_m)
            assert uri_mine not in seen_m
            assert set(seen_a) == {uri_mine}


async def test_resources_subscribe_on_2025_11_25(af: AgentFlow) -> None:
    import warnings

    from mcp import types
    from mcp.shared.exceptions import MCPDeprecationWarning

    alice, mallory = af.agent("alice"), af.agent("mallory")
    await alice.submit_plan("p", APPROVAL_PLAN)
    await mallory.submit_plan("p", APPROVAL_PLAN)
    mine = await alice.start("p", params={"numbers": [1]})
    theirs = await mallory.start("p", params={"numbers": [2]})
    await alice.wait(mine.id, timeout=30)
    await mallory.wait(theirs.id, timeout=30)
    uri_mine = f"agentflow://instances/{mine.id}"
    uri_theirs = f"agentflow://instances/{theirs.id}"
    heard: dict[str, list[str]] = {"alice": [], "mallory": []}
    arrived = {"alice": asyncio.Event(), "mallory": asyncio.Event()}

    def handler(who: str, marker: str) -> Any:
        async def on_message(message: Any) -> None:
            if isinstance(message, types.ResourceUpdatedNotification):
                heard[who].append(str(message.params.uri))
                if str(message.params.uri) == marker:
                    arrived[who].set()
        return on_message

    async with Client(build_server(af, ServerConfig(agent_id="alice")), mode="legacy",
                      message_handler=handler("alice", uri_mine)) as a, Client(
            build_server(af, ServerConfig(agent_id="mallory")), mode="legacy",
            message_handler=handler("mallory", uri_theirs)) as m:
        assert a.protocol_version == "2025-11-25"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)  # removed in 2026-07-28
            await a.subscribe_resource(uri_mine)
            await m.subscribe_resource(uri_mine)  # not mallory's: accepted, never told
            await m.subscribe_resource(uri_theirs)
        await alice.send_event(mine.id, "approval", {"approved": True})
        await asyncio.wait_for(arrived["alice"].wait(), 60)
        await alice.wait(mine.id, timeout=30)
        await mallory.send_event(theirs.id, "approval", {"approved": False})
        await asyncio.wait_for(arrived["mallory"].wait(), 60)
        assert set(heard["alice"]) == {uri_mine}
        assert uri_mine not in heard["mallory"]
