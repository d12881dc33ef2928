"""Streamable HTTP: bearer tokens name agents, and agents cannot see each other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_server.conftest import (
    APPROVAL_PLAN,
    REPLY_PLAN,
    REPO,
    elicitation,
    structured,
    text,
)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "curl", "version": "0"}}}


@asynccontextmanager
async def as_agent(url: str, token: str, mode: str = "auto", **kwargs: Any
                   ) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode,
                            **kwargs) as client:
        yield client


async def test_requests_without_a_valid_token_get_401(http_server: str) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as http:
        for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "tok-alice"},
                     {"Authorization": "Bearer tok-alice-but-longer"}):
            response = await http.post(http_server, json=INIT, headers={**headers, **auth})
            assert response.status_code == 401, auth
        ok = await http.post(http_server, json=INIT,
                             headers={**headers, "Authorization": "Bearer tok-alice"})
        assert ok.status_code == 200
    with pytest.raises(ExceptionGroup) as refused:  # the SDK's client cannot connect
        async with as_agent(http_server, "wrong") as c:
            await c.list_tools()
    assert refused.group_contains(MCPError)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_two_tokens_two_agents_neither_sees_the_other(http_server: str, mode: str
                                                             ) -> None:
    secret = f"secret-{mode}"  # the server is shared by the module's tests
    async with as_agent(http_server, "tok-alice", mode) as alice:
        await alice.call_tool("submit_plan", {"name": secret, "source": REPLY_PLAN})
        await alice.call_tool("start_instance", {"plan": secret, "id": f"alice-{mode}"})
        waiting = structured(await alice.call_tool("wait_for_instance",
                                                   {"instance_id": f"alice-{mode}"}))
        assert waiting["instance"]["status"] == "waiting"
        before = structured(await alice.call_tool("get_history",
                                                  {"instance_id": f"alice-{mode}"}))

    theirs = f"alice-{mode}"
    async with as_agent(http_server, "tok-bob", mode,
                        elicitation_callback=elicitation("accept", {"decision": "approve"})) as bob:
        bobs = structured(await bob.call_tool("list_plans", {}))["plans"]
        assert secret not in [p["name"] for p in bobs]
        assert structured(await bob.call_tool("list_instances", {}))["instances"] == []
        assert structured(await bob.call_tool("list_pending_events", {}))["pending"] == []
        for tool, arguments in [
            ("get_instance", {}), ("get_history", {}), ("wait_for_instance", {}),
            ("send_event", {"type": "reply", "payload": "from bob"}), ("approve", {}),
            ("pause_instance", {}), ("resume_instance", {}), ("terminate_instance", {}),
            ("restart_instance", {}),
        ]:
            other = await bob.call_tool(tool, {"instance_id": theirs, **arguments})
            missing = await bob.call_tool(tool, {"instance_id": "missing", **arguments})
            assert other.is_error and missing.is_error, tool
            assert text(other).replace(theirs, "X") == text(missing).replace("missing", "X")
        for tool, arguments in [("list_plans", {"name": secret}),
                                ("start_instance", {"plan": secret})]:
            assert f"no plan named {secret!r}" in text(await bob.call_tool(tool, arguments))
        for uri in (f"agentflow://plans/{secret}", f"agentflow://instances/{theirs}"):
            with pytest.raises(MCPError):
                await bob.read_resource(uri)
        # bob's own plan of the same name is his alone.
        mine = structured(await bob.call_tool("submit_plan", {"name": secret,
                                                              "source": REPLY_PLAN}))
        assert mine["ok"]

    async with as_agent(http_server, "tok-alice", mode) as alice:
        after = structured(await alice.call_tool("get_history", {"instance_id": theirs}))
        assert after["steps"] == before["steps"]
        assert after["instance"]["status"] == "waiting"
        assert after["instance"]["updated_at"] == before["instance"]["updated_at"]
        plans = structured(await alice.call_tool("list_plans", {"name": secret}))["plans"]
        assert len(plans) == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_person_approves_over_http(http_server: str, mode: str) -> None:
    person = elicitation("accept", {"decision": "approve", "comment": "over http"})
    async with as_agent(http_server, "tok-alice", mode, elicitation_callback=person) as alice:
        await alice.call_tool("submit_plan", {"name": "approved", "source": APPROVAL_PLAN})
        await alice.call_tool("start_instance", {"plan": "approved", "id": f"ok-{mode}",
                                                 "params": {"numbers": [1]}})
        await alice.call_tool("wait_for_instance", {"instance_id": f"ok-{mode}"})
        result = structured(await alice.call_tool("approve", {"instance_id": f"ok-{mode}"}))
        assert result["outcome"] == "approved"
        done = structured(await alice.call_tool("wait_for_instance",
                                                {"instance_id": f"ok-{mode}"}))
        assert done["instance"]["output"] == {"status": "approved", "total": 1, "by": "human"}


def test_a_port_in_use_is_a_clear_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "mcp_server", "--http", f"127.0.0.1:{port}", "--token",
             "t=alice", "--isolation", "inline", "--db", f"sqlite:///{tmp_path}/p.db"],
            capture_output=True, text=True, timeout=60, cwd=str(REPO),
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 1, out.stderr
    assert "address already in use" in out.stderr
    assert f"could not serve HTTP on 127.0.0.1:{port}" in out.stderr
