"""``agentflow serve`` and ``agentflow watch`` as real processes: sign-in rules, the
loopback warning, MCP on /mcp beside the console, SIGTERM, and watch's resumable
output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentflow import AgentFlow
from tests.console.conftest import ALICE, ROOT, _free_port, _wait_listening
from tests.console.plans import APPROVAL


@contextlib.asynccontextmanager
async def serve_no_run(db: str) -> AsyncIterator[str]:
    """``agentflow serve --no-run`` for operator alice on ``db``; yields its base URL and
    stops it with SIGTERM, which it must answer with exit 0."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--no-run",
        "--operator", f"alice={ALICE}", "--listen", f"127.0.0.1:{port}", cwd=ROOT)
    try:
        await _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60
               ) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", *args, cwd=ROOT, env=env or dict(os.environ),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sign_in(http: Any, token: str) -> Any:
    """Sign in as a browser does: open the form (which sets its anti-forgery cookie),
    then post it with the form's hidden value."""
    form = await http.get("/login")
    login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login_token is not None, form.text
    return await http.post("/login", data={"token": token, "next": "/instances",
                                           "login_token": login_token.group(1)})


async def test_serve_refuses_to_start_with_nobody_to_sign_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENTFLOW_CONSOLE_OPERATORS"}
    code, _, err = await _run("serve", "--db", f"sqlite:///{tmp_path}/a.db", env=env)
    assert code == 2 and "--operator NAME=TOKEN" in err
    code, _, err = await _run("serve", "--db", f"sqlite:///{tmp_path}/a.db",
                              "--operator", "alice=short", env=env)
    assert code == 2 and "at least 16 characters" in err


async def test_serve_warns_off_loopback_without_tls_and_stops_on_sigterm(
        tmp_path: Path) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", f"sqlite:///{tmp_path}/a.db",
        "--operator", f"alice={ALICE}", "--listen", f"0.0.0.0:{port}", "--no-run",
        cwd=ROOT, stderr=asyncio.subprocess.PIPE)
    await _wait_listening(port, proc)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert "WARNING: listening on 0.0.0.0 without TLS" in err
    assert "agentflow serve stopped" in err


async def test_serve_hosts_mcp_on_the_same_port(tmp_path: Path) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    db = f"sqlite:///{tmp_path}/a.db"
    port = _free_port()
    env = {**os.environ, "AGENTFLOW_MCP_TOKENS": json.dumps({"agent-token-123": "agent-1"})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--isolation", "inline",
        "--operator", f"alice={ALICE}", "--listen", f"127.0.0.1:{port}", "--mcp",
        cwd=ROOT, env=env)
    try:
        await _wait_listening(port, proc)
        base = f"http://127.0.0.1:{port}"
        # The console answers beside MCP ...
        async with httpx2.AsyncClient() as http:
            page = await http.get(f"{base}/login")
            assert page.status_code == 200 and "Operator token" in page.text
            # ... and /mcp refuses a request without an agent's token.
            refused = await http.post(f"{base}/mcp", json={})
            assert refused.status_code == 401
        headers = {"Authorization": "Bearer agent-token-123"}
        async with httpx2.AsyncClient(headers=headers) as http, Client(
                streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            tools = await client.list_tools()
            assert "submit_plan" in {t.name for t in tools.tools}
            submitted = await client.call_tool("submit_plan", {"name": "p",
                                                               "source": APPROVAL})
            assert not submitted.is_error
            started = await client.call_tool("start_instance",
                                             {"plan": "p", "params": {"repo": "r"}})
            instance_id = (started.structured_content or {})["instance"]["id"]
            uri = f"agentflow://instances/{instance_id}"
            # Over HTTP too, the agent behind the token hears of its instance's changes
            # (this process answers the approval, as an operator would).
            async with AgentFlow(db, isolation="inline", run_scheduler=False) as host:
                agent = host.agent("agent-1")
                status = await agent.wait(instance_id, timeout=60)
                assert status.status == "waiting"
                async with client.listen(resource_subscriptions=[uri]) as sub:
                    await agent.send_event(instance_id, "approval",
                                           {"approved": True, "comment": "", "by": "human"})

                    async def first_update() -> str:
                        async for event in sub:
                            return str(getattr(event, "uri", ""))
                        raise AssertionError("the stream ended")

                    assert await asyncio.wait_for(first_update(), 60) == uri
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_watch_prints_changes_and_resumes_after_a_cursor(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/a.db"
    async with AgentFlow(db, isolation="inline", run_scheduler=False) as flow:
        agent = flow.agent("agent-1")
        await agent.submit_plan("p", APPROVAL)
        first = await agent.start("p", params={"repo": "r"}, id="first")
        await first.pause()
        await agent.start("p", params={"repo": "r"}, id="second")
    code, out, _ = await _run("watch", "--db", db, "--after", "0", "--count", "3", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(c["instance_id"], c["kind"], c["status"]) for c in lines] == [
        ("first", "created", "queued"), ("first", "status", "paused"),
        ("second", "created", "queued")]
    code, out, _ = await _run("watch", "--db", db, "--after", str(lines[1]["seq"]),
                              "--count", "1")
    assert code == 0
    assert out.split()[0] == str(lines[2]["seq"]) and "second created queued" in out
    code, _, err = await _run("watch", "--db", db, "--after", "-1", "--count", "1")
    assert code == 2 and "cursor" in err


@pytest.mark.parametrize("spec", ["alice", "alice=", "alice=0123456789abcdef:admin"])
def test_operator_specs_are_checked(spec: str) -> None:
    from agentflow.console import parse_operators

    with pytest.raises(ValueError, match="operator 'alice'"):
        parse_operators([spec])


async def test_the_instances_list_pages_by_key_through_every_instance(tmp_path: Path) -> None:
    """1,230 instances, 50 a page: following "Older" visits each exactly once, newest
    first, also where many share one creation time; filters carry along."""
    import re

    import httpx2

    from agentflow import Engine, ManualClock

    db = f"sqlite:///{tmp_path}/a.db"
    clock = ManualClock(start=1_800_000_000.0)
    engine = Engine(db, clock=clock, run_scheduler=False)

    async def never(event: object, step: object) -> None:
        raise AssertionError("nothing runs here")

    engine.register("w", never)  # type: ignore[arg-type]
    async with engine:
        for batch in range(41):  # 30 instances per creation time
            await engine.binding("w").create_batch(
                [{"id": f"i{batch:02d}-{k:02d}"} for k in range(30)])
            clock.advance(1)
        expected = [r.id for r in await engine.store.list_instances(limit=2000)]
    async with serve_no_run(db) as base, httpx2.AsyncClient(base_url=base) as http:
        signed = await sign_in(http, ALICE)
        assert signed.status_code == 303
        seen: list[str] = []
        url: str | None = "/instances?status=queued"
        while url is not None:
            page = await http.get(url)
            assert page.status_code == 200
            seen += re.findall(r'<tr data-instance="([^"]+)"', page.text)
            found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
            url = found.group(1).replace("&amp;", "&") if found else None
            assert url is None or "status=queued" in url
    assert seen == expected and len(seen) == 1230


async def test_the_event_stream_resumes_after_the_last_event_id(tmp_path: Path) -> None:
    """/events numbers each event with its change's seq; a browser that reconnects
    with Last-Event-ID carries on right after it."""
    import httpx2

    db = f"sqlite:///{tmp_path}/a.db"
    async with AgentFlow(db, isolation="inline", run_scheduler=False) as flow:
        agent = flow.agent("agent-1")
        await agent.submit_plan("p", APPROVAL)
        for i in range(3):
            await agent.start("p", params={"repo": "r"}, id=f"i{i}")
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--no-run",
        "--operator", f"alice={ALICE}", "--listen", f"127.0.0.1:{port}", cwd=ROOT)

    async def read_events(http: httpx2.AsyncClient, count: int, **kwargs: object
                          ) -> list[tuple[str, dict[str, object]]]:
        got: list[tuple[str, dict[str, object]]] = []
        event_id = ""
        async with http.stream("GET", "/events", **kwargs) as answer:  # type: ignore[arg-type]
            assert answer.status_code == 200
            async for line in answer.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    got.append((event_id, json.loads(line[5:])))
                    if len(got) == count:
                        return got
        raise AssertionError("the stream ended")

    try:
        await _wait_listening(port, proc)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await sign_in(http, ALICE)
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anon:
                refused = await anon.get("/events", follow_redirects=False)
            assert refused.status_code == 303  # not signed in: sent to sign in
            first = await asyncio.wait_for(read_events(http, 2, params={"after": "0"}), 60)
            assert [e["instance_id"] for _, e in first] == ["i0", "i1"]
            assert [int(i) for i, _ in first] == [e["seq"] for _, e in first]
            rest = await asyncio.wait_for(read_events(
                http, 1, headers={"Last-Event-ID": first[-1][0]}), 60)
            assert rest[0][1]["instance_id"] == "i2"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_serve_human_only_writes_the_databases_policy(tmp_path: Path) -> None:
    from agentflow.policy import OperatorPolicy

    db = f"sqlite:///{tmp_path}/a.db"
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--no-run",
        "--operator", f"alice={ALICE}", "--listen", f"127.0.0.1:{port}",
        "--human-only", "deploy", cwd=ROOT)
    try:
        await _wait_listening(port, proc)
        async with AgentFlow(db, isolation="inline", run_scheduler=False) as flow:
            policy = await OperatorPolicy(flow.engine.store).read()
        assert "deploy" in policy.human_only and "approval" in policy.human_only
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_a_sign_in_posted_from_another_site_is_refused(tmp_path: Path) -> None:
    """Login CSRF: a page elsewhere posting an operator token to /login (so that the
    person then acts as that operator) gets no session; the form from this site works."""
    import httpx2

    db = f"sqlite:///{tmp_path}/a.db"
    async with serve_no_run(db) as base, httpx2.AsyncClient(base_url=base) as http:
        forged = await http.post("/login", data={"token": ALICE, "next": "/instances"})
        assert forged.status_code == 403 and "did not come from this page" in forged.text
        other = await http.post("/login", data={"token": ALICE, "next": "/instances",
                                                "login_token": "guessed"})
        assert other.status_code == 403
        assert "agentflow_session" not in http.cookies
        assert (await http.get("/instances")).status_code in (302, 303)
        signed = await sign_in(http, ALICE)
        assert signed.status_code == 303
        assert (await http.get("/instances")).status_code == 200
