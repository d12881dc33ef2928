"""Quotas: each refusal is a LimitExceededError that names the quota and how to raise it,
and nothing is half-written; the step rate delays and never fails; and one agent's
adversarial plan neither exhausts the host nor stops another agent's plan."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentflow import AgentFlow, LimitExceededError, Quotas
from agentflow.capabilities import KVCapability
from agentflow.testing import ManualClock
from sandbox import Limits

MIB = 1024 * 1024

KV_PLAN = '''
async def run(event, step):
    out = []
    for key, value in event.payload:
        try:
            await step.do(f"set {key}", lambda: env.kv.set(key, value))
            out.append("ok")
        except StepError as e:
            out.append([e.error_name, str(e)])
    keys = await step.do("keys", lambda: env.kv.list(""))
    return {"out": out, "keys": keys}
'''


@pytest.fixture
async def small(clock: ManualClock) -> AsyncIterator[AgentFlow]:
    quotas = Quotas(agent_kv_keys=3, agent_kv_bytes=4000, agent_active_instances=2,
                    agent_total_instances=3, instance_journal_bytes=300_000)
    flow = AgentFlow("memory://", clock=clock, isolation="inline", quotas=quotas)
    async with flow:
        yield flow


async def test_kv_keys_quota_refuses_a_new_key_and_writes_nothing(small: AgentFlow) -> None:
    agent = small.agent("kv-keys", capabilities={"kv": KVCapability()})
    await agent.submit_plan("kv", KV_PLAN)
    inst = await agent.start("kv", params=[["a", 1], ["b", 2], ["c", 3], ["d", 4], ["a", 5]])
    status = await inst.wait(timeout=30)
    assert status.status == "complete", status.error
    out = status.output["out"]
    assert out[:3] == ["ok", "ok", "ok"] and out[4] == "ok"  # overwriting adds no key
    name, message = out[3]
    assert name == "LimitExceededError"
    assert "Quotas.agent_kv_keys=3" in message and "quotas=Quotas(agent_kv_keys=" in message
    assert status.output["keys"] == ["a", "b", "c"]
    assert await small.engine.store.kv_get("kv-keys", "d") is None
    assert (await small.usage("kv-keys"))["agent_kv_keys"] == {"used": 3, "limit": 3}
    # A refused step is not retried: the refusal would be the same.
    records = {r.name: r for r in await inst.history()}
    assert records["set d"].attempts == 1 and records["set d"].status == "error"


async def test_kv_bytes_quota_counts_keys_and_values(small: AgentFlow) -> None:
    agent = small.agent("kv-bytes", capabilities={"kv": KVCapability()})
    await agent.submit_plan("kv", KV_PLAN)
    big = "é" * 1500  # 3,000 bytes of UTF-8 (JSON keeps it as is)
    inst = await agent.start("kv", params=[["a", big], ["b", big], ["a", "small"],
                                           ["b", big]])
    status = await inst.wait(timeout=30)
    out = status.output["out"]
    assert out[0] == "ok"
    assert out[1][0] == "LimitExceededError" and "Quotas.agent_kv_bytes=4,000" in out[1][1]
    assert out[2:] == ["ok", "ok"]  # after shrinking "a", "b" fits
    assert json.loads(await small.engine.store.kv_get("kv-bytes", "a") or "null") == "small"


async def test_instance_quotas_refuse_a_start_and_create_nothing(small: AgentFlow) -> None:
    agent = small.agent("many")
    await agent.submit_plan("wait", '''
async def run(event, step):
    return await step.wait_for_event("go", type="go")
''')
    first, second = await agent.start("wait"), await agent.start("wait")
    await first.wait(timeout=30)
    await second.wait(timeout=30)
    with pytest.raises(LimitExceededError, match=r"Quotas\.agent_active_instances=2"):
        await agent.start("wait")
    assert len(await agent.instances()) == 2
    await agent.send_event(first.id, "go", 1)
    assert (await first.wait(timeout=30)).status == "complete"
    third = await agent.start("wait")  # one finished: room for one more active
    await third.wait(timeout=30)
    await agent.send_event(third.id, "go", 3)
    await third.wait(timeout=30)
    with pytest.raises(LimitExceededError, match=r"Quotas\.agent_total_instances=3"):
        await agent.start("wait")
    assert len(await agent.instances()) == 3
    other = small.agent("other")  # quotas are per agent
    await other.submit_plan("wait", "async def run(event, step):\n    return 1\n")
    assert (await (await other.start("wait")).wait(timeout=30)).output == 1


async def test_journal_quota_refuses_the_result_that_would_pass_it(small: AgentFlow) -> None:
    agent = small.agent("journal")
    await agent.submit_plan("fill", '''
async def run(event, step):
    done = 0
    for i in range(10):
        try:
            await step.do(f"chunk {i}", lambda: "x" * 100000)
            done += 1
        except StepError as e:
            return [done, e.error_name, str(e)]
    return [done]
''')
    inst = await agent.start("fill")
    status = await inst.wait(timeout=30)
    assert status.status == "complete", status.error
    done, name, message = status.output
    assert done == 2 and name == "LimitExceededError"
    assert "Quotas(instance_journal_bytes=" in message and "300,000" in message
    history = await inst.history()
    assert [r.status for r in history] == ["ok", "ok", "error"]
    assert history[2].result is None  # the refused result was not stored
    assert history[2].attempts == 1


async def test_the_step_rate_delays_and_never_fails(clock: ManualClock) -> None:
    quotas = Quotas(agent_steps_per_second=50, agent_step_burst=5)
    async with AgentFlow("memory://", clock=clock, isolation="inline", quotas=quotas) as af:
        agent = af.agent("rated")
        await agent.submit_plan("many", '''
async def run(event, step):
    values = await gather(*[step.do(f"s {i}", lambda: 1) for i in range(30)])
    return sum(values)
''')
        status = await (await agent.start("many")).wait(timeout=60)
        assert status.status == "complete" and status.output == 30
        assert af.step_rate("rated").delayed > 0


async def test_a_step_delayed_by_the_step_rate_does_not_time_out() -> None:
    """The rate's delay is not the attempt's: eight gathered steps at four a second,
    each with a half-second timeout and no retries, all complete (the later ones were
    delayed past their timeout, and failed with WorkflowTimeoutError)."""
    quotas = Quotas(agent_steps_per_second=4, agent_step_burst=1)
    async with AgentFlow("memory://", isolation="inline", quotas=quotas) as af:
        agent = af.agent("rated")
        await agent.submit_plan("timed", '''
async def run(event, step):
    values = await gather(*[step.do(f"s {i}", lambda: 1, timeout="0.5 seconds",
                                    retries={"limit": 0}) for i in range(8)])
    return sum(values)
''')
        status = await (await agent.start("timed")).wait(timeout=120)
        assert status.status == "complete", status.error
        assert status.output == 8
        assert af.step_rate("rated").delayed > 0


def vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


GATHER_BOMB = '''
async def run(event, step):
    s = "x" * 1000000
    await gather(*[step.do(f"blob {i}", lambda: s) for i in range(400)])
    return "all stored"
'''

CONTROL = '''
async def run(event, step):
    a = await step.do("one", lambda: 1)
    b = await step.do("two", lambda: a + 1)
    return [a, b]
'''


async def test_a_gather_of_400_one_megabyte_steps_keeps_host_memory_bounded(
        tmp_path: Path) -> None:
    # Stated bound: the host's RSS stays within +128 MiB of its baseline while the plan
    # runs, with the default quotas (16 MiB in flight per run, 64 MiB of journal).
    limits = Limits(memory_bytes=512 * MIB)
    async with AgentFlow(f"sqlite:///{tmp_path / 'bomb.db'}", isolation="process",
                         limits=limits) as af:
        control = af.agent("control")
        await control.submit_plan("control", CONTROL)
        warm = await control.start("control")
        assert (await warm.wait(timeout=60)).status == "complete"
        baseline, peak = vm_rss(), 0
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, vm_rss())
                await asyncio.sleep(0.01)

        sampler = asyncio.ensure_future(sample())
        attacker = af.agent("attacker")
        await attacker.submit_plan("bomb", GATHER_BOMB)
        bomb = await attacker.start("bomb")
        others = [await control.start("control") for _ in range(3)]
        try:
            status = await bomb.wait(timeout=100)
            control_done = [await inst.wait(timeout=60) for inst in others]
        finally:
            stop.set()
            await sampler
        assert status.status == "errored"
        assert status.error is not None and status.error["name"] == "LimitExceededError"
        assert "Quotas" in status.error["message"]
        assert [c.output for c in control_done] == [[1, 2]] * 3
        assert peak - baseline < 128 * MIB, (baseline, peak)
        # Nothing half-written: only whole results within the journal quota were kept.
        history = await bomb.history()
        stored = [r for r in history if r.status == "ok"]
        assert all(r.result == "x" * 1000000 for r in stored)
        assert len(stored) * 1_000_002 <= af.quotas.instance_journal_bytes
        assert all(r.error is not None and r.error["name"] == "LimitExceededError"
                   for r in history if r.status != "ok")


def test_doctor_lists_the_quotas() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "agentflow.cli", "doctor"],
                         capture_output=True, text=True, timeout=120,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    for name, value in Quotas().as_dict().items():
        assert name in out.stdout and f"{value:,}" in out.stdout, out.stdout


def test_quotas_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="agent_kv_keys must be a positive number"):
        Quotas(agent_kv_keys=0)
    with pytest.raises(ValueError, match="run_bytes_in_flight must be at least 4 MiB"):
        Quotas(run_bytes_in_flight=1024)


RACER = '''
import asyncio, os, sys, time
from agentflow import AgentFlow, LimitExceededError, Quotas

async def main(url, go):
    flow = AgentFlow(url, isolation="inline", quotas=Quotas(agent_active_instances=5))
    async with flow:
        agent = flow.agent("racer")
        await agent.submit_plan("wait", PLAN)
        print("ready", flush=True)
        while not os.path.exists(go):
            await asyncio.sleep(0.001)
        results = await asyncio.gather(*(agent.start("wait") for _ in range(20)),
                                       return_exceptions=True)
        for r in results:
            if not isinstance(r, LimitExceededError) and isinstance(r, BaseException):
                raise r
        print("started", sum(not isinstance(r, BaseException) for r in results), flush=True)

PLAN = """
async def run(event, step):
    return await step.wait_for_event("go", type="go")
"""
asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_two_processes_starting_at_once_cannot_pass_the_instance_quota_together(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The instance quotas are counted in the transaction that writes the instance: a
    count taken before it let two processes both pass (four racers on a quota of 5 made 8
    active instances)."""
    url = (str(request.getfixturevalue("postgres_url")) if store == "postgresql"
           else f"sqlite:///{tmp_path}/race.db")
    go = tmp_path / "go"
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    racers = [await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, str(go), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parents[2]))
        for _ in range(4)]
    try:
        for racer in racers:
            assert racer.stdout is not None
            line = await asyncio.wait_for(racer.stdout.readline(), 120)
            assert line.strip() == b"ready", line
        go.touch()
        outputs = [await asyncio.wait_for(racer.communicate(), 120) for racer in racers]
    finally:
        for racer in racers:
            if racer.returncode is None:
                racer.kill()
                await racer.wait()
    started = 0
    for (out, err), racer in zip(outputs, racers, strict=True):
        assert racer.returncode == 0, err.decode()
        started += int(out.decode().split()[-1])
    flow = AgentFlow(url, isolation="inline")
    async with flow:
        held = await flow.engine.store.count_instances(scope="racer")
    assert started == held == 5
