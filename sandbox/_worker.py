"""The worker process: confine itself, then serve one agent's runs over two pipes.

`worker_main` runs in the child right after the zygote's ``fork()`` and never returns:
every path ends in ``os._exit`` so that nothing of the zygote's loop runs in a worker.
The loop reads frames from the host's pipe (non-blocking, through the event loop) and
writes frames with blocking writes; `PlanSide` does the rest.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import select
import signal
from collections.abc import Callable
from typing import Any, NoReturn

from sandbox._confine import confine_worker
from sandbox._protocol import FrameBuffer, ProtocolError, encode_frame
from sandbox._runtime import PlanSide

__all__ = ["worker_main"]

_EXIT_SETUP_FAILED = 70


class _Writer:
    """Blocking, whole-frame writes to the host's pipe."""

    def __init__(self, fd: int, limit: int) -> None:
        self.fd = fd
        self.limit = limit
        self.busy = False

    def send(self, message: dict[str, Any]) -> None:
        frame = memoryview(encode_frame(message, self.limit))
        self.busy = True
        try:
            while frame:
                frame = frame[os.write(self.fd, frame):]
        finally:
            self.busy = False


def worker_main(config: dict[str, Any], *, read_fd: int, write_fd: int, assign_fd: int,
                ruleset_fd: int | None, devnull_fd: int, zygote_pid: int) -> NoReturn:
    """Wait for a uid, confine this process, serve the host until its pipe closes, exit.

    Until the zygote assigns the uid this process is a spare: it has made its event
    loop (as a fresh fork, that alone costs ~1 ms of copy-on-write faults) and reads
    only from the zygote's assignment pipe.
    """
    status = _EXIT_SETUP_FAILED
    writer = _Writer(write_fd, config["max_message_bytes"])
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        # A spare prepares at the lowest priority, to keep off the CPU of running work
        # (only as root, which may raise it back).
        niced = os.geteuid() == 0
        if niced:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
        before = _open_fds()
        loop = asyncio.new_event_loop()
        loop_fds = sorted(_open_fds() - before)  # its epoll and self-pipe
        # Take the copy-on-write faults now rather than on the first run, unless an
        # agent is already waiting for this spare: then they are the first run's
        # anyway, and warming up first would cost a burst of starts ~0.4 ms a worker.
        warm_up(loop, until=lambda: _readable(assign_fd))
        uid = _read_assignment(assign_fd)
        if niced:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        applied = confine_worker(config, uid=uid, keep_fds=[read_fd, write_fd, *loop_fds],
                                 ruleset_fd=ruleset_fd, devnull_fd=devnull_fd,
                                 zygote_pid=zygote_pid)
        status = 0
        _serve(loop, config, read_fd, writer, applied)
    except BaseException as exc:
        if status:
            with contextlib.suppress(BaseException):
                writer.send({"t": "fatal", "reason": f"worker setup failed: "
                                                      f"{type(exc).__name__}: {exc}"})
        status = status or 1
    finally:
        os._exit(status)


_WARMUP_PLAN = """
async def run(event, step):
    values = await gather(step.now(), step.random())
    data = json_loads(json_dumps({"a": [1, 2.5, "x"]}))
    return {"n": len(values), "data": data, "t": f"{event.instance_id}"}
"""


def warm_up(loop: asyncio.AbstractEventLoop,
            until: Callable[[], bool] = lambda: False) -> None:
    """Run a trusted plan through `PlanSide` and the frame codec on ``loop``.

    In the zygote this performs lazy imports and fills caches once; in a spare it
    takes the copy-on-write page faults that a fresh fork otherwise pays on its first
    run (~3 ms here), before any agent is waiting. It stops early once ``until()``.
    """
    if until():
        return
    inbox: list[dict[str, Any]] = []
    frames = FrameBuffer(1 << 20)

    def send(message: dict[str, Any]) -> None:
        inbox.extend(frames.feed(encode_frame(message, 1 << 20)))

    async def exercise() -> None:
        side = PlanSide(send)
        side.handle({"t": "run", "run": 1, "source": _WARMUP_PLAN, "filename": "<warmup>",
                     "event": {"payload": {}, "timestamp": "2026-01-01T00:00:00+00:00",
                               "instance_id": "warmup"}, "caps": []})
        for _ in range(50):
            await asyncio.sleep(0)
            if until():
                return
            for message in [m for m in inbox if m["t"] == "step"]:
                inbox.remove(message)
                side.handle({"t": "step_ok", "run": 1, "call": message["call"], "value": 0.5})
            if any(m["t"] in ("done", "fail") for m in inbox):
                return

    loop.run_until_complete(exercise())


def _open_fds(limit: int = 1024) -> set[int]:
    """The descriptors open in this process.

    Listing /proc/self/fd costs ~7 us; probing 1,024 numbers with fstat ~0.7 ms, which
    every spare paid twice. The listing's own descriptor shows in the listing and is
    closed once it returns: the fstat pass drops it. Without /proc, probe.
    """
    try:
        listed = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        listed = list(range(limit))
    found = set()
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.add(fd)
    return found


def _readable(fd: int) -> bool:
    """True if reading ``fd`` would not block (data, or the writer's end closed)."""
    return bool(select.select([fd], [], [], 0)[0])


def _read_assignment(fd: int) -> int:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    os.close(fd)
    if not data:
        os._exit(0)  # the zygote went away (or retired this spare)
    uid = json.loads(data)["uid"]
    if not isinstance(uid, int):
        raise ValueError("bad assignment")
    return uid


def _serve(loop: asyncio.AbstractEventLoop, config: dict[str, Any], read_fd: int,
           writer: _Writer, applied: dict[str, str]) -> None:
    asyncio.set_event_loop(loop)
    stop: asyncio.Future[None] = loop.create_future()

    def stop_soon() -> None:
        if not stop.done():
            stop.set_result(None)

    def on_cpu_limit(_signum: int, _frame: object) -> None:
        # RLIMIT_CPU's soft limit: say why, then go (the hard limit would SIGKILL us).
        if not writer.busy:  # never interleave with a frame being written
            with contextlib.suppress(BaseException):
                writer.send({"t": "fatal", "reason": f"the worker used up its CPU budget "
                                                      f"(Limits.cpu_seconds="
                                                      f"{config['cpu_seconds']})"})
        os._exit(3)

    signal.signal(signal.SIGXCPU, on_cpu_limit)
    side = PlanSide(writer.send, on_fatal=stop_soon, cancel_grace=min(config["cancel_grace"],
                                                                config["call_timeout"]))
    frames = FrameBuffer(config["max_message_bytes"])
    probe_enabled = bool(config.get("unsafe_test_probe"))

    def on_readable() -> None:
        try:
            data = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            stop_soon()
            return
        try:
            for message in frames.feed(data):
                kind = message["t"]
                if kind == "ping":
                    writer.send({"t": "pong", "seq": message.get("seq")})
                elif kind == "probe" and probe_enabled:
                    writer.send(_probe(message.get("code")))
                else:
                    side.handle(message)
        except ProtocolError:
            stop_soon()  # the host speaks nonsense: nothing sensible is left to do

    os.set_blocking(read_fd, False)
    loop.add_reader(read_fd, on_readable)
    writer.send({"t": "ready", "pid": os.getpid(), "layers": applied})
    try:
        loop.run_until_complete(stop)
    finally:
        loop.remove_reader(read_fd)


def _probe(code: object) -> dict[str, Any]:
    """Run unrestricted test code (only with Limits.unsafe_test_probe): see `Limits`."""
    namespace: dict[str, Any] = {"__builtins__": builtins}
    try:
        exec(str(code), namespace)
        value = namespace.get("result")
        try:
            encode_frame({"value": value}, 1 << 20)
        except (TypeError, ValueError):
            value = repr(value)
        return {"t": "probe_result", "value": value}
    except BaseException as exc:
        return {"t": "probe_result", "error": f"{type(exc).__name__}: {exc}"}
