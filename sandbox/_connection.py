"""Connections from the host to one agent's worker: a confined process, or inline.

Both speak the same JSON frames to the same `PlanSide`, so inline mode has the same
semantics as process mode (values are JSON round-tripped both ways) and differs only in
where the plan runs: in the host's process and event loop, with no watchdog. Inline is
for trusted code, tests and notebooks. **It is not a security boundary.**
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
from collections.abc import Callable
from typing import Any

from sandbox._driver import RunDriver
from sandbox._errors import SandboxTimeoutError, WorkerCrashedError
from sandbox._limits import Limits
from sandbox._protocol import FrameBuffer, ProtocolError, decode_body, encode_frame
from sandbox._runtime import PlanSide
from sandbox._spawner import Spawned

__all__ = ["Connection", "InlineConnection", "ProcessConnection", "worker_cpu_seconds"]


class Connection:
    """What the pool needs from a worker, whatever its isolation."""

    def __init__(self, agent_id: str, limits: Limits) -> None:
        self.agent_id = agent_id
        self.limits = limits
        self.drivers: dict[int, RunDriver] = {}
        self.dead: WorkerCrashedError | None = None
        self.pid: int | None = None
        self.uid: int | None = None
        self.layers: dict[str, str] = {}
        self._run_ids = 0
        self.on_dead: Callable[[Connection], None] | None = None

    def next_run_id(self) -> int:
        self._run_ids += 1
        return self._run_ids

    def send(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def run_started(self) -> None:
        """A run begins (the watchdog starts watching)."""

    def _mark_dead(self, error: WorkerCrashedError) -> None:
        if self.dead is not None:
            return
        self.dead = error
        for driver in list(self.drivers.values()):
            driver.on_worker_lost(error)
        if self.on_dead is not None:
            self.on_dead(self)

    def kill(self, error: WorkerCrashedError) -> None:
        self._mark_dead(error)

    def exited(self) -> bool:
        """True when the worker is known to be gone (checked without waiting)."""
        return self.dead is not None

    async def close(self) -> None:
        self.kill(WorkerCrashedError(f"the worker for agent {self.agent_id!r} was evicted",
                                        rerun=True))


class InlineConnection(Connection):
    """Runs the agent's plans in this process. Not a security boundary."""

    def __init__(self, agent_id: str, limits: Limits) -> None:
        super().__init__(agent_id, limits)
        self._side = PlanSide(self._from_plan)
        self._loop = asyncio.get_running_loop()

    def send(self, message: dict[str, Any]) -> None:
        if self.dead is not None:
            raise self.dead
        frame = encode_frame(message, self.limits.max_message_bytes)
        self._loop.call_soon(self._deliver, self._to_plan, frame)

    def _from_plan(self, message: dict[str, Any]) -> None:
        frame = encode_frame(message, self.limits.max_message_bytes)
        self._loop.call_soon(self._deliver, self._to_driver, frame)

    def _to_plan(self, message: dict[str, Any], _size: int) -> None:
        self._side.handle(message)

    def _deliver(self, handler: Callable[[dict[str, Any], int], None], frame: bytes) -> None:
        if self.dead is not None:
            return
        try:
            handler(decode_body(frame[4:]), len(frame) - 4)
        except ProtocolError as exc:
            self.kill(WorkerCrashedError(f"inline plan runtime protocol error: {exc}"))

    def _to_driver(self, message: dict[str, Any], size: int) -> None:
        driver = self.drivers.get(message.get("run"))  # type: ignore[arg-type]
        if driver is not None:
            driver.on_message(message, size)


def worker_cpu_seconds(pid: int | None) -> float | None:
    """The CPU time (user + system) a worker has used, or None if it cannot be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


class _PipeReader(asyncio.Protocol):
    def __init__(self, connection: ProcessConnection) -> None:
        self._connection = connection

    def data_received(self, data: bytes) -> None:
        self._connection.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.eof()


class ProcessConnection(Connection):
    """A confined worker process, talked to over two pipes, watched by a watchdog."""

    def __init__(self, agent_id: str, limits: Limits, spawned: Spawned, uid: int) -> None:
        super().__init__(agent_id, limits)
        self.pid = spawned.pid
        self.uid = uid
        self._spawned = spawned
        self._pidfd: int | None = spawned.pidfd
        self._frames = FrameBuffer(limits.max_message_bytes)
        self._reader: asyncio.ReadTransport | None = None
        self._writer: asyncio.WriteTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._ready = False
        self._probes: list[asyncio.Future[dict[str, Any]]] = []
        self._fatal_reason: str | None = None
        self._last_heard = self._loop.time()
        self._progressed = True  # a message other than a pong since the last tick
        self._cpu_mark: float | None = None  # worker CPU seconds at that tick
        self._ping_seq = 0
        self._heard = 0  # messages received (pongs included): the loop turned
        self._yield_by: float | None = None  # a cancel was sent: the loop must turn by then
        self._yield_mark = 0
        self.retiring = False
        self._watchdog: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect the pipes. The worker confines itself meanwhile; its ``ready`` comes
        first on the pipe, and the host may queue messages behind it right away (a
        worker that never gets ready is ended by the watchdog or by its EOF)."""
        loop, spawned = self._loop, self._spawned
        self._reader, _ = await loop.connect_read_pipe(
            lambda: _PipeReader(self), os.fdopen(spawned.from_worker, "rb", buffering=0))
        self._writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(spawned.to_worker, "wb", buffering=0))
        self._last_heard = loop.time()

    # -- sending -------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.dead is not None:
            raise self.dead
        frame = encode_frame(message, self.limits.max_message_bytes)
        assert self._writer is not None
        self._writer.write(frame)
        if message.get("t") in ("body_cancel", "cancel"):
            self._expect_yield()

    def _expect_yield(self) -> None:
        """The host cancelled a body or a run: the worker's event loop must turn within
        `Limits.cancel_grace` (a synchronous body that spins blocks it), or the watchdog
        kills the worker."""
        if self._yield_by is None:
            self._yield_by = self._loop.time() + self.limits.cancel_grace
            self._yield_mark = self._heard
        self._ping_seq += 1
        assert self._writer is not None
        self._writer.write(encode_frame({"t": "ping", "seq": self._ping_seq},
                                        self.limits.max_message_bytes))
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self._loop.create_task(self._watch())

    def run_started(self) -> None:
        self._last_heard = max(self._last_heard, self._loop.time())
        self._progressed = True
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self._loop.create_task(self._watch())

    async def probe(self, code: str) -> dict[str, Any]:
        """Run unrestricted test code in the worker (Limits.unsafe_test_probe only)."""
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._probes.append(future)
        self.run_started()
        try:
            self.send({"t": "probe", "code": code})
            return await future
        finally:
            with contextlib.suppress(ValueError):
                self._probes.remove(future)

    # -- receiving -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.dead is not None:
            return
        self._last_heard = self._loop.time()
        try:
            for message, size in self._frames.feed_sized(data):
                self._heard += 1
                if self._yield_by is not None and self._heard > self._yield_mark:
                    self._yield_by = None
                self._dispatch(message, size)
                if self.dead is not None:
                    return
        except ProtocolError as exc:
            self.kill(WorkerCrashedError(f"the worker for agent {self.agent_id!r} broke "
                                         f"the message protocol and was killed: {exc}"))

    def _dispatch(self, message: dict[str, Any], size: int) -> None:
        kind = message["t"]
        if not self._ready:
            if kind == "fatal":
                self._fatal_reason = str(message.get("reason"))[:500]
                return
            if kind != "ready" or not isinstance(message.get("layers"), dict):
                raise ProtocolError(f"expected 'ready', got {kind!r}")
            self.layers = {str(k): str(v) for k, v in message["layers"].items()}
            self._ready = True
            return
        if kind == "pong":
            return
        self._progressed = True
        if kind == "fatal":  # the worker is about to exit: give it no new run
            self._fatal_reason = str(message.get("reason"))[:500]
            self.retiring = True
        elif kind == "probe_result" and self._probes:
            future = self._probes.pop(0)
            if not future.done():
                future.set_result(message)
        else:
            driver = self.drivers.get(message.get("run"))  # type: ignore[arg-type]
            if driver is not None:
                driver.on_message(message, size)
            elif not isinstance(message.get("run"), int):
                raise ProtocolError(f"message {kind!r} without a run id")

    def eof(self) -> None:
        reason = f": {self._fatal_reason}" if self._fatal_reason else (
            " (it may have hit Limits.memory_bytes or Limits.cpu_seconds, or crashed on "
            "data nested too deeply for the C stack)")
        self.kill(WorkerCrashedError(f"the worker for agent {self.agent_id!r} exited "
                                     f"unexpectedly{reason}"))

    # -- watchdog and death --------------------------------------------------------------

    def exited(self) -> bool:
        if self.dead is not None or self._pidfd is None or self.retiring:
            return True
        # A pidfd is readable once the process has exited: catches a worker that died
        # while idle before its EOF was processed.
        return bool(select.select([self._pidfd], [], [], 0)[0])

    @property
    def busy(self) -> bool:
        return bool(self.drivers or self._probes)

    async def _watch(self) -> None:
        timeout = self.limits.call_timeout
        tick = min(max(min(timeout, self.limits.cancel_grace) / 4, 0.005), 0.5)
        # Once started, it watches until the worker dies: an idle worker must not
        # compute either (a step body that ignores its cancellation runs on after the
        # host gave up on it, and after its run ended).
        while self.dead is None:
            await asyncio.sleep(tick)
            if self._yield_by is not None and self._loop.time() > self._yield_by:
                grace = self.limits.cancel_grace
                self.kill(WorkerCrashedError(
                    f"the worker for agent {self.agent_id!r} was killed: plan code kept "
                    f"computing for more than Limits.cancel_grace={grace:g} s after the "
                    f"host cancelled it (a step timeout, terminate or restart); its runs "
                    f"are run again in a fresh worker", rerun=True))
                return
            busy = self.busy
            quiet = self._loop.time() - self._last_heard
            if (busy and quiet > timeout) or self._spun(timeout):
                self.kill(SandboxTimeoutError(
                    f"the worker for agent {self.agent_id!r} computed for more than "
                    f"Limits.call_timeout={timeout:g} s without answering (an endless loop "
                    f"or a huge computation in plan code or a step body"
                    f"{'' if busy else ', left running after its run ended'}); it was "
                    f"killed and will be rebuilt on the next run"))
                return
            if busy and quiet >= tick:
                self._ping_seq += 1
                with contextlib.suppress(WorkerCrashedError):
                    self.send({"t": "ping", "seq": self._ping_seq})

    def _spun(self, timeout: float) -> bool:
        """True when the worker used more than ``timeout`` CPU seconds since its last
        message that was not a pong.

        Pongs prove only that the worker's event loop turns. Plan code that keeps it
        turning without asking the host anything (``while True: await
        gather(helper())``: each gathered coroutine is a task, so every await yields)
        answers every ping, and would compute until RLIMIT_CPU. Waiting for the host
        costs no CPU, so this never ends a worker that waits.
        """
        cpu = worker_cpu_seconds(self.pid)
        if cpu is None:
            return False
        if self._progressed or self._cpu_mark is None:
            self._progressed, self._cpu_mark = False, cpu
            return False
        return cpu - self._cpu_mark > timeout

    def kill(self, error: WorkerCrashedError) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            os.close(self._pidfd)
            self._pidfd = None
        for transport in (self._reader, self._writer):
            if transport is not None:
                transport.close()
        for future in self._probes:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: whoever awaits it sees it anyway
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        self._mark_dead(error)

    async def close(self) -> None:
        self.kill(WorkerCrashedError(f"the worker for agent {self.agent_id!r} was evicted",
                                        rerun=True))
