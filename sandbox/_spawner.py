"""The host's handle on the zygote: start it, ask it for workers, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from sandbox._compile import CompiledPlan
from sandbox._errors import WorkerCrashedError
from sandbox._limits import LayerStatus, Limits

__all__ = ["Spawned", "ZygoteClient"]

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BOOT = ("import sys; sys.path.insert(0, sys.argv[3]); "
         "from sandbox._zygote import main; main()")
# The zygote and its workers get none of the host's environment: it holds the host's
# secrets (API keys, tokens), and a process's initial environment stays readable in its
# memory and in /proc/PID/environ even after os.environ is cleared.
_CLEAN_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
_START_TIMEOUT = 60.0
_MAX_CONTROL_BYTES = 60_000  # the zygote reads datagrams of up to 64 KiB
_SPAWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Spawned:
    """A freshly forked worker: its pid, a pidfd, and the host's ends of its pipes."""

    pid: int
    pidfd: int
    to_worker: int
    from_worker: int


class ZygoteClient:
    """Starts the zygote process and asks it for workers over a control socket."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._lock = asyncio.Lock()
        self.layers: list[LayerStatus] = []
        self.applied: list[str] = []
        self.pid: int | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start the zygote and wait for its hello (imports, probes, warm-up)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {**self._limits.to_json(), "host_pid": os.getpid()}
        debug = os.environ.get("AGENTFLOW_SANDBOX_DEBUG") == "1"
        try:
            # Popen forks and execs at once (vfork/posix_spawn); the slow part, the
            # zygote's imports, is awaited below.
            self._process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-I", "-c", _BOOT, json.dumps(config), str(child.fileno()),
                 _PACKAGE_PARENT],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=None if debug else subprocess.DEVNULL,
                start_new_session=True, env=_CLEAN_ENVIRONMENT)
        finally:
            child.close()
        parent.setblocking(False)
        self._socket = parent
        try:
            hello, fds = await asyncio.wait_for(self._receive(), _START_TIMEOUT)
        except BaseException:
            await self.close()
            raise
        for fd in fds:
            os.close(fd)
        if hello.get("t") != "hello":
            await self.close()
            raise WorkerCrashedError(f"the sandbox zygote sent {hello!r} instead of hello")
        self.pid = hello["pid"]
        self.applied = list(hello["applied"])
        self.layers = [LayerStatus(name, bool(available), str(detail))
                       for name, available, detail in hello["layers"]]

    async def spawn(self, uid: int, plan: CompiledPlan | None = None) -> Spawned:
        """Fork a worker that will confine itself under ``uid``.

        With ``plan``, the zygote compiles it first (cached), so the worker starts with
        it compiled; plans too large for one control datagram are left to the worker.
        """
        request: dict[str, Any] = {"t": "spawn", "uid": uid}
        if plan is not None:
            request.update(source=plan.source, filename=plan.filename)
        data = json.dumps(request).encode()
        if len(data) > _MAX_CONTROL_BYTES:
            data = json.dumps({"t": "spawn", "uid": uid}).encode()
        async with self._lock:
            if self._socket is None or not self.alive:
                raise WorkerCrashedError("the sandbox zygote is not running")
            self._socket.send(data)
            reply, fds = await asyncio.wait_for(self._receive(), _SPAWN_TIMEOUT)
        if reply.get("t") != "spawned" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise WorkerCrashedError(f"the sandbox zygote could not fork a worker: "
                                     f"{reply.get('message', reply)}")
        return Spawned(pid=int(reply["pid"]), pidfd=fds[2], to_worker=fds[0],
                       from_worker=fds[1])

    async def _receive(self) -> tuple[dict[str, Any], list[int]]:
        assert self._socket is not None
        sock = self._socket
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(sock, 65536, 4)
            except BlockingIOError:
                await _readable(sock.fileno())
                continue
            if not data:
                raise WorkerCrashedError("the sandbox zygote exited")
            return json.loads(data), fds

    async def close(self) -> None:
        """Close the control socket (the zygote exits) and reap the zygote."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                pidfd = os.pidfd_open(process.pid)
            except ProcessLookupError:
                pidfd = None
            if pidfd is not None:
                try:  # a pidfd becomes readable when the process exits
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_readable(pidfd), 5.0)
                finally:
                    os.close(pidfd)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        process.wait()


async def _readable(fd: int) -> None:
    """Wait until ``fd`` is readable."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
