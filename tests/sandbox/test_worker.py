"""Confined worker processes: rebuild, LRU, watchdog, resource attacks, protocol abuse.

Every resource attack must end in a clear error (and, where the worker cannot go on, a
killed worker), while the host and another agent's worker keep running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sandbox import (
    Limits,
    PlanRuntimeError,
    SandboxTimeoutError,
    WorkerCrashedError,
    WorkerPool,
)
from tests.sandbox.support import RecordingHost, make_event, plan, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

CALL_TIMEOUT = 1.0
LIMITS = Limits(call_timeout=CALL_TIMEOUT, memory_bytes=256 * 1024 * 1024,
                max_message_bytes=1024 * 1024, unsafe_test_probe=True)


#: Probe code that blocks the rogue worker until the host kills it (no timer to race).
HOLD_UNTIL_KILLED = "import threading\nthreading.Event().wait()"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(limits=LIMITS, max_workers=8) as started:
        yield started


#: For plans that legitimately compute for a while before the limit under test stops
#: them (a memory bomb filling 256 MiB, a million nested slices): the watchdog must not
#: end them first on a loaded machine, so its deadline is far away.
ROOMY = Limits(call_timeout=60.0, memory_bytes=256 * 1024 * 1024,
               max_message_bytes=1024 * 1024, unsafe_test_probe=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def roomy() -> AsyncIterator[WorkerPool]:
    async with WorkerPool(limits=ROOMY, max_workers=8) as started:
        yield started


async def run(pool: WorkerPool, agent: str, source: str,
              host: RecordingHost | None = None) -> object:
    return await pool.run_plan(agent, source, make_event(), host or RecordingHost(),
                               capabilities=[])


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:  # gone, or being reaped (ESRCH)
        return True


async def bystander(pool: WorkerPool) -> int:
    """Start (or reuse) another agent's worker; return its pid."""
    assert await run(pool, "bystander", plan("return 'alive'")) == "alive"
    pid = pool.worker_pid("bystander")
    assert pid is not None
    return pid


async def assert_bystander_unharmed(pool: WorkerPool, pid: int) -> None:
    assert await run(pool, "bystander", plan("return 'alive'")) == "alive"
    assert pool.worker_pid("bystander") == pid


async def test_a_worker_is_rebuilt_after_eviction(pool: WorkerPool) -> None:
    assert await run(pool, "a-evict", plan("return 1")) == 1
    first = pool.worker_pid("a-evict")
    await pool.evict("a-evict")
    assert pool.worker_pid("a-evict") is None
    await wait_until(lambda: first is not None and gone(first), what="evicted worker exit")
    assert await run(pool, "a-evict", plan("return 2")) == 2
    assert pool.worker_pid("a-evict") not in (None, first)


async def test_a_worker_killed_while_idle_is_rebuilt_invisibly(pool: WorkerPool) -> None:
    assert await run(pool, "a-kill", plan("return 1")) == 1
    first = pool.worker_pid("a-kill")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: gone(first), what="killed worker exit")
    assert await run(pool, "a-kill", plan("return 2")) == 2
    assert pool.worker_pid("a-kill") not in (None, first)


async def test_workers_are_kept_lru_bounded() -> None:
    async with WorkerPool(limits=LIMITS, max_workers=2) as small:
        for agent in ("lru-a", "lru-b", "lru-a", "lru-c"):
            assert await run(small, agent, plan("return 1")) == 1
        assert small.worker_pid("lru-b") is None  # least recently used
        assert small.worker_pid("lru-a") is not None
        assert small.worker_pid("lru-c") is not None


async def test_each_agent_gets_its_own_uid(pool: WorkerPool) -> None:
    uids = set()
    for agent in ("uid-a", "uid-b", "uid-c"):
        await run(pool, agent, plan("return 1"))
        pid = pool.worker_pid(agent)
        with open(f"/proc/{pid}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        uids.add(int(uid_line.split()[1]))
    assert len(uids) == 3
    assert all(uid >= LIMITS.uid_base for uid in uids)


@pytest.mark.parametrize(("name", "body"), [
    ("infinite loop", "while True:\n    pass"),
    ("huge integer", "return 9 ** 9 ** 9"),
    ("endless recursion in a loop", "def f(n):\n    return n if n < 0 else f(n - 1)\n"
                                     "while True:\n    f(500)"),
])
async def test_runaway_computation_is_killed_by_the_watchdog(pool: WorkerPool, name: str,
                                                             body: str) -> None:
    other = await bystander(pool)
    await run(pool, "runaway", plan("return 1"))
    victim = pool.worker_pid("runaway")
    started = time.monotonic()
    with pytest.raises(SandboxTimeoutError, match="call_timeout=1 s"):
        await run(pool, "runaway", plan(body))
    # Killed by the watchdog, not by RLIMIT_CPU (300 s): a bound far from both, so a
    # loaded machine does not fail it.
    assert time.monotonic() - started < CALL_TIMEOUT + 60
    assert victim is not None
    await wait_until(lambda: gone(victim), what="runaway worker killed")
    await assert_bystander_unharmed(pool, other)
    assert await run(pool, "runaway", plan("return 'rebuilt'")) == "rebuilt"


async def test_a_runaway_step_body_is_a_clear_step_error(pool: WorkerPool) -> None:
    other = await bystander(pool)
    host = RecordingHost()
    source = plan("def spin():\n    while True:\n        pass\n"
                  'return await step.do("spin", spin)')
    with pytest.raises(SandboxTimeoutError):
        await run(pool, "spinner", source, host)
    (error,) = host.body_errors  # the host's run_body() saw the step fail, and why
    assert isinstance(error, SandboxTimeoutError)
    await assert_bystander_unharmed(pool, other)


@pytest.mark.parametrize("body", [
    'return "a" * (1024 ** 3)',
    "blocks = []\nwhile True:\n    blocks.append('x' * 10 ** 6)",
    "return [0] * (10 ** 9)",
])
async def test_memory_bombs_hit_the_address_space_limit(roomy: WorkerPool, body: str) -> None:
    other = await bystander(roomy)
    await run(roomy, "hog", plan("return 1"))
    victim = roomy.worker_pid("hog")
    assert victim is not None
    with pytest.raises(PlanRuntimeError) as caught:
        await run(roomy, "hog", plan(body))
    assert caught.value.error_name == "MemoryError"
    await wait_until(lambda: gone(victim), timeout=60, what="worker exit after MemoryError")
    await assert_bystander_unharmed(roomy, other)


async def test_deep_recursion_is_a_clear_error_and_the_worker_survives(
        pool: WorkerPool) -> None:
    await run(pool, "recurse", plan("return 1"))
    pid = pool.worker_pid("recurse")
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, "recurse", plan("def f(n):\n    return f(n + 1)\nreturn f(0)"))
    assert caught.value.error_name == "RecursionError"
    assert await run(pool, "recurse", plan("return 'same worker'")) == "same worker"
    assert pool.worker_pid("recurse") == pid


@pytest.mark.parametrize(("body", "error_name"), [
    ('return str(10 ** 100000)', "ValueError"),  # int max str digits
    ('return int("9" * 100000)', "ValueError"),
    ('return "x" * (2 * 1024 * 1024)', "TypeError"),  # over max_message_bytes
])
async def test_huge_values_are_clear_errors(pool: WorkerPool, body: str,
                                            error_name: str) -> None:
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, "huge", plan(body))
    assert caught.value.error_name == error_name


FIND_WRITE_PIPE = '''
import os, stat
def find_write_pipe():
    for fd in range(3, 64):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.write(fd, b"")
                return fd
        except OSError:
            pass
'''


@pytest.mark.parametrize(("frame", "reason"), [
    ("(1 << 30).to_bytes(4, 'big')", "announced a message of 1,073,741,824 bytes"),
    ("(5).to_bytes(4, 'big') + b'{oops'", "undecodable message"),
    ("(2).to_bytes(4, 'big') + b'[]'", "must be a JSON object"),
    ("(15).to_bytes(4, 'big') + b'{\"t\":\"strange\"}'", "message 'strange' without a run"),
])
async def test_a_worker_that_breaks_the_protocol_is_killed(pool: WorkerPool, frame: str,
                                                           reason: str) -> None:
    other = await bystander(pool)
    await run(pool, "rogue", plan("return 1"))
    victim = pool.worker_pid("rogue")
    with pytest.raises(WorkerCrashedError, match=reason):
        await pool._probe("rogue", FIND_WRITE_PIPE + f"os.write(find_write_pipe(), {frame})\n"
                                   + HOLD_UNTIL_KILLED)
    assert victim is not None
    await wait_until(lambda: gone(victim), what="rogue worker killed")
    await assert_bystander_unharmed(pool, other)


async def test_the_zygote_is_restarted_invisibly_if_it_dies(pool: WorkerPool) -> None:
    await run(pool, "z-before", plan("return 1"))
    zygote = pool._zygote
    assert zygote is not None and zygote.pid is not None
    os.kill(zygote.pid, signal.SIGKILL)
    await wait_until(lambda: not zygote.alive, what="zygote death")
    assert await run(pool, "z-after", plan("return 'new zygote'")) == "new zygote"
    # The old zygote's workers died with it (parent-death signal); rebuilt invisibly.
    assert await run(pool, "z-before", plan("return 'rebuilt'")) == "rebuilt"


FORGE = FIND_WRITE_PIPE + '''
import json
def forge(message):
    body = json.dumps(message).encode()
    os.write(find_write_pipe(), len(body).to_bytes(4, "big") + body)
'''


class BlockingHost(RecordingHost):
    """Keeps every step pending until the run is over."""

    async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
        self.calls.append((op, args))
        await asyncio.Event().wait()  # never set: stays pending until cancelled


@pytest.mark.parametrize(("forgery", "reason"), [
    ('forge({"t": "cap", "run": 1, "call": 99, "name": "fs", "method": "read", '
     '"args": ["/etc/shadow"], "kwargs": {}})', "capability call fs.read was not granted"),
    ('for i in range(1100):\n    forge({"t": "step", "run": 1, "call": 100 + i, '
     '"op": "now", "args": {}})', "more than 1024 calls in flight"),
])
async def test_an_escaped_worker_cannot_use_the_host_beyond_its_grant(
        pool: WorkerPool, forgery: str, reason: str) -> None:
    agent = f"forger-{len(reason)}"
    host = BlockingHost()
    run_task = asyncio.ensure_future(pool.run_plan(
        agent, plan('await step.sleep("hold", 1)'), make_event(), host,
        capabilities=["kv"]))
    await wait_until(lambda: host.calls, what="the run to reach the host")
    with pytest.raises(WorkerCrashedError, match=reason):
        await pool._probe(agent, FORGE + forgery + "\n" + HOLD_UNTIL_KILLED)
    with pytest.raises(WorkerCrashedError, match=reason):
        await run_task
    assert host.capability_calls == []


async def test_a_capability_call_outside_a_step_body_is_refused(pool: WorkerPool) -> None:
    host = BlockingHost()
    run_task = asyncio.ensure_future(pool.run_plan(
        "forger-outside", plan('await step.sleep("hold", 1)'), make_event(), host,
        capabilities=["kv"]))
    await wait_until(lambda: host.calls, what="the run to reach the host")
    pid = pool.worker_pid("forger-outside")
    reply = await pool._probe("forger-outside", FORGE + 'forge({"t": "cap", "run": 1, '
                              '"call": 99, "name": "kv", "method": "get", "args": ["k"], '
                              '"kwargs": {}})\nresult = "sent"')
    assert reply == {"t": "probe_result", "value": "sent"}
    assert await run(pool, "forger-outside", plan("return 'worker kept'")) == "worker kept"
    assert pool.worker_pid("forger-outside") == pid
    assert host.capability_calls == []
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run_task


async def test_the_cpu_budget_ends_a_worker_with_a_clear_reason() -> None:
    # The watchdog (call_timeout) is set far above the budget, so only RLIMIT_CPU acts.
    limits = Limits(cpu_seconds=1, call_timeout=30.0)
    async with WorkerPool(limits=limits) as cpu_pool:
        started = time.monotonic()
        with pytest.raises(WorkerCrashedError, match=r"CPU budget \(Limits.cpu_seconds=1\)"):
            await run(cpu_pool, "burner", plan("while True:\n    pass"))
        assert time.monotonic() - started < 60  # well under the 30 s watchdog's 300 s
        assert await run(cpu_pool, "burner", plan("return 'rebuilt'")) == "rebuilt"


async def test_a_worker_near_its_cpu_budget_is_replaced_before_its_next_run() -> None:
    limits = Limits(cpu_seconds=2, call_timeout=30.0, unsafe_test_probe=True)
    async with WorkerPool(limits=limits) as cpu_pool:
        await run(cpu_pool, "worn", plan("return 1"))
        first = cpu_pool.worker_pid("worn")
        # Up to 1.7 CPU seconds in all (the worker's start and first run included, which
        # take longer on a loaded machine): past the 80% mark, under the 2 s budget.
        await cpu_pool._probe("worn", "import time\n"
                                      "while time.process_time() < 1.7:\n    pass")
        assert await run(cpu_pool, "worn", plan("return 2")) == 2
        assert cpu_pool.worker_pid("worn") not in (None, first)


async def test_workers_never_see_the_host_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-host-secret-0451"
    monkeypatch.setenv("AGENTFLOW_TEST_SECRET", secret)
    async with WorkerPool(limits=LIMITS) as fresh:
        environ = await fresh._probe("env-reader", "import os\nresult = dict(os.environ)")
        pid = fresh.worker_pid("env-reader")
        with open(f"/proc/{pid}/environ", "rb") as f:
            initial = f.read()
        zygote = fresh._zygote
        assert zygote is not None
        with open(f"/proc/{zygote.pid}/environ", "rb") as f:
            zygote_initial = f.read()
    assert secret not in str(environ["value"])
    assert secret.encode() not in initial
    assert secret.encode() not in zygote_initial


async def test_a_plan_whose_data_crashes_the_worker_when_freed_fails_itself(
        roomy: WorkerPool) -> None:
    # Freeing a million nested slices overflows the C stack (a segfault). It must fail
    # the run that built them, not report success and take down the next run.
    source = plan("x = None\nfor i in range(1000000):\n    x = slice(x)\nKEEP.append(x)\n"
                  "return 'reported success'", helpers="KEEP = []\n")
    with pytest.raises(WorkerCrashedError, match="nested too deeply"):
        await run(roomy, "deep-nester", source)
    assert await run(roomy, "deep-nester", plan("return 'next run fine'")) == "next run fine"
