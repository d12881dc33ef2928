"""Capabilities: granted per agent, enforced by the host, secrets kept on the host."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from agentflow import AgentFlow
from agentflow.capabilities import HttpCapability, KVCapability, ToolsCapability
from agentflow.testing import ManualClock
from tests.conftest import eventually

SECRET = "sk-test-SECRET-4242"

PROBE = '''
async def run(event, step):
    out = {}
    for name, url in event.payload["urls"].items():
        try:
            out[name] = await step.do(f"{name}", lambda: env.http.get_json(url),
                                      retries={"limit": 0})
        except StepError as e:
            out[name] = ["error", e.error_name, str(e)]
    return out
'''


def api(request: httpx2.Request) -> httpx2.Response:
    if request.url.path == "/big":
        return httpx2.Response(200, content=b"[" + b"1," * 5000 + b"1]")
    authorized = request.headers.get("authorization") == f"Bearer {SECRET}"
    return httpx2.Response(200, json={"auth": authorized})


def http(**options: Any) -> HttpCapability:
    return HttpCapability(["api.example.com"], max_bytes=2000,
                          transport=httpx2.MockTransport(api),
                          headers={"Authorization": f"Bearer {SECRET}"}, **options)


async def test_http_allowlist_size_cap_and_secret_stay_on_host(af: AgentFlow) -> None:
    agent = af.agent("a", capabilities={"http": http()})
    await agent.submit_plan("probe", PROBE)
    inst = await agent.start("probe", params={"urls": {
        "ok": "https://api.example.com/data",
        "denied": "https://evil.example.net/steal",
        "plain_http": "http://api.example.com/data",
        "big": "https://api.example.com/big"}})
    status = await inst.wait(timeout=10)
    assert status.status == "complete", status.error
    out = status.output
    assert out["ok"] == {"auth": True}  # the host added the key; the plan never saw it
    assert out["denied"][:2] == ["error", "CapabilityError"]
    assert "'evil.example.net' is not in this agent's allowlist" in out["denied"][2]
    assert "scheme 'http' is not allowed" in out["plain_http"][2]
    assert "over the limit of 2,000 bytes" in out["big"][2]
    everything = json.dumps([status.model_dump(mode="json"),
                             [h.model_dump(mode="json") for h in await inst.history()],
                             await agent.plan_source("probe")])
    assert SECRET not in everything
    row = await af.engine.store.get_instance(inst.id)
    assert row is not None
    assert SECRET not in row.payload


async def test_http_timeout_bounds_the_whole_request_not_each_read(af: AgentFlow) -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b"["  # then nothing more, ever: each read alone would never time out
        await asyncio.Event().wait()

    async def slow_api(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=trickle())

    slow = HttpCapability(["api.example.com"], timeout=0.2, attempts=1,
                          transport=httpx2.MockTransport(slow_api))
    agent = af.agent("slow", capabilities={"http": slow})
    await agent.submit_plan("probe", PROBE)
    inst = await agent.start("probe", params={"urls": {"t": "https://api.example.com/x"}})
    status = await inst.wait(timeout=10)
    assert "no complete reply from api.example.com within 0.2 s" in status.output["t"][2]


async def test_a_capability_refusal_fails_its_step_at_once(af: AgentFlow) -> None:
    # Default retries (5, exponential): a refusal is the same on every attempt, so the
    # step fails on the first one instead of five minutes of durable retry timers later.
    agent = af.agent("refused", capabilities={"http": http()})
    await agent.submit_plan("p", '''
async def run(event, step):
    return await step.do("get", lambda: env.http.get_json("https://evil.example.net/x"))
''')
    inst = await agent.start("p")
    status = await inst.wait(timeout=10)
    assert status.status == "errored" and status.error is not None
    assert status.error["name"] == "CapabilityError"
    assert "not in this agent's allowlist" in status.error["message"]
    (record,) = await inst.history()
    assert record.attempts == 1


async def test_missing_grant_is_a_clear_step_error(af: AgentFlow) -> None:
    agent = af.agent("nogrants")  # the default: no capability at all
    await agent.submit_plan("p", '''
async def run(event, step):
    try:
        await step.do("call", lambda: env.http.get_json("https://api.example.com/"),
                      retries={"limit": 0})
    except AttributeError as e:
        return str(e)
    return "reached the network"
''')
    status = await (await agent.start("p")).wait(timeout=10)
    assert status.status == "complete", status.error
    assert status.output == "capability 'http' was not granted to this agent (granted: none)"


async def test_kv_is_durable_and_per_agent(af: AgentFlow) -> None:
    plan = '''
async def run(event, step):
    before = await step.do("read", lambda: env.kv.get("k", "unset"))
    await step.do("write", lambda: env.kv.set("k", event.payload))
    keys = await step.do("list", lambda: env.kv.list(""))
    return [before, keys]
'''
    a = af.agent("a", capabilities={"kv": KVCapability()})
    b = af.agent("b", capabilities={"kv": KVCapability()})
    for agent in (a, b):
        await agent.submit_plan("kv", plan)
    assert (await (await a.start("kv", params="A1")).wait(timeout=10)).output == ["unset", ["k"]]
    assert (await (await a.start("kv", params="A2")).wait(timeout=10)).output == ["A1", ["k"]]
    assert (await (await b.start("kv", params="B1")).wait(timeout=10)).output == ["unset", ["k"]]


async def test_tools_capability_calls_host_functions(af: AgentFlow) -> None:
    calls: list[tuple[int, int]] = []

    async def add(x: int, y: int) -> int:
        calls.append((x, y))
        return x + y

    agent = af.agent("t", capabilities={"tools": ToolsCapability({"add": add})})
    await agent.submit_plan("p", '''
async def run(event, step):
    total = await step.do("add", lambda: env.tools.call("add", 2, y=3))
    try:
        await step.do("nope", lambda: env.tools.call("rm_rf"), retries={"limit": 0})
    except StepError as e:
        return [total, str(e)]
''')
    status = await (await agent.start("p")).wait(timeout=10)
    assert status.output[0] == 5
    assert "no tool named 'rm_rf'" in status.output[1]
    assert calls == [(2, 3)]


async def test_tools_that_misbehave_end_in_a_step_error_and_never_stall_the_host(
        af: AgentFlow) -> None:
    started, go = threading.Event(), threading.Event()
    released: list[bool] = []

    async def cancelled() -> None:
        raise asyncio.CancelledError  # not a cancellation of the run: the tool's own bug

    def named(name: str, ctx: str) -> str:  # keyword names the facade itself uses
        return f"{name}/{ctx}"

    def slow() -> str:  # a sync tool: it must run off the event loop
        started.set()
        released.append(go.wait(timeout=10))
        return "slow done"

    tools = ToolsCapability({"cancelled": cancelled, "named": named, "slow": slow})
    agent = af.agent("t", capabilities={"tools": tools})
    await agent.submit_plan("p", '''
async def run(event, step):
    try:
        await step.do("cancelled", lambda: env.tools.call("cancelled"), retries={"limit": 0})
    except StepError as e:
        first = str(e)
    named = await step.do("named", lambda: env.tools.call("named", name="n", ctx="c"))
    slow = await step.do("slow", lambda: env.tools.call("slow"))
    return [first, named, slow]
''')
    inst = await agent.start("p")
    await eventually(started.is_set, what="the sync tool to start")
    go.set()  # only reachable while the tool runs if the loop is free
    status = await inst.wait(timeout=10)
    assert "CancelledError" in status.output[0]
    assert status.output[1:] == ["n/c", "slow done"]
    assert released == [True]


async def test_confined_worker_never_holds_host_secrets(clock: ManualClock,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTFLOW_TEST_HOST_SECRET", SECRET)
    flow = AgentFlow(f"sqlite:///{tmp_path}/s.db", clock=clock, isolation="process")
    async with flow:
        agent = flow.agent("a", capabilities={"http": http()})
        await agent.submit_plan("probe", PROBE)
        inst = await agent.start("probe", params={"urls": {
            "ok": "https://api.example.com/data"}})
        assert (await inst.wait(timeout=20)).output == {"ok": {"auth": True}}
        pid = flow.pool.worker_pid("a")
        assert pid is not None
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert SECRET.encode() not in environ
    assert SECRET.encode() not in cmdline
    assert os.environ["AGENTFLOW_TEST_HOST_SECRET"] == SECRET
