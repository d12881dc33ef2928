"""The zygote: one small process per pool that forks a confined worker per agent.

Started by the host as ``python -I -c ...`` with a SOCK_SEQPACKET control socket. It
imports everything a worker will need (as an unprivileged uid a worker cannot import
anything new: the interpreter lives under a 0700 home on this kind of machine), warms
up the compile and event-loop paths, probes which layers this machine supports,
unshares the network namespace once, builds the Landlock ruleset once, then calls
``gc.freeze()`` so forked workers share those pages.

Control protocol (JSON datagrams): the zygote first sends ``{"t": "hello", "pid",
"layers": [[name, available, detail], ...]}``; each ``{"t": "spawn", "uid"[, "source",
"filename"]}`` is answered by ``{"t": "spawned", "pid"}`` with three descriptors
attached (the pipe to the worker, the pipe from it, and a pidfd to kill it with) or by
``{"t": "error"}``.

The zygote keeps one *spare*: a worker already forked, with its event loop made, that
waits (as root, reading only from the zygote) for its uid. A spawn hands the spare over
and tells it its uid; it then confines itself. Forking the next spare, and compiling
the plan the spawn named (later spares inherit it), happen after the reply.
The zygote exits when the control socket closes, and dies with the host (parent-death
signal); workers die with the zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import json
import os
import signal
import socket
import sys
from typing import Any

from sandbox import _landlock, _seccomp
from sandbox._confine import unshare_network
from sandbox._limits import LAYER_NAMES
from sandbox._worker import warm_up, worker_main

__all__ = ["main"]

_PRELOAD = (
    "asyncio", "asyncio.unix_events", "selectors", "json", "json.decoder", "json.encoder",
    "datetime", "hashlib", "contextvars", "inspect", "traceback", "linecache", "tokenize",
    "unicodedata", "encodings.idna", "encodings.utf_16", "encodings.utf_32",
    "encodings.latin_1", "encodings.ascii", "encodings.punycode", "stringprep",
    "RestrictedPython", "RestrictedPython.Guards", "RestrictedPython.transformer",
    "sandbox._runtime", "sandbox._worker", "sandbox._compile",
)
def _warm_up() -> None:
    """Run the paths a worker runs, so lazy imports and caches happen here, once."""
    loop = asyncio.new_event_loop()
    try:
        warm_up(loop)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _read_only_paths() -> list[str]:
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix,
                  os.path.dirname(os.path.abspath(__file__))}
    return sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)})


class _Zygote:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.layers: dict[str, tuple[bool, str]] = {}
        self.ruleset_fd: int | None = None
        self.devnull = os.open(os.devnull, os.O_RDWR)

    def prepare(self) -> None:
        """Probe each layer; switch off (and report) what this machine cannot do."""
        cfg, root = self.config, os.geteuid() == 0
        self._set("close_fds", cfg["close_fds"], True, "inherited descriptors closed")
        self._set("rlimits", cfg["rlimits"], True,
                  "AS, CPU, NOFILE, NPROC, FSIZE, CORE, MEMLOCK, MSGQUEUE lowered")
        if cfg["net_namespace"]:
            try:
                unshare_network()
                self._set("net_namespace", True, True, "private network and IPC namespaces")
            except OSError as exc:
                self._set("net_namespace", False, False, f"unshare failed: {exc}")
        else:
            self._set("net_namespace", False, True, "switched off")
        self._set("setuid", cfg["setuid"], root, "one unprivileged uid/gid per agent"
                  if root else "the host does not run as root: cannot change uid")
        self._set("no_new_privs", cfg["no_new_privs"], True, "PR_SET_NO_NEW_PRIVS")
        needs_nnp = cfg["setuid"] and root and not cfg["no_new_privs"]
        abi = _landlock.abi_version()
        if cfg["landlock"] and abi and not needs_nnp:
            self.ruleset_fd, detail = _landlock.build_ruleset(_read_only_paths(), abi)
            cfg["landlock_detail"] = detail
            self._set("landlock", True, True, detail)
        else:
            reason = ("switched off" if not cfg["landlock"] else "the kernel has no Landlock"
                      if not abi else "needs no_new_privs once the worker is not root")
            self._set("landlock", False, bool(abi), reason)
        ok, detail = _seccomp.available()
        if cfg["seccomp"] and ok and needs_nnp:
            ok, detail = False, "needs no_new_privs once the worker is not root"
        self._set("seccomp", cfg["seccomp"] and ok, ok, detail)

    def _set(self, name: str, enabled: bool, available: bool, detail: str) -> None:
        self.config[name] = bool(enabled and available)
        self.layers[name] = (available, detail)

    def serve(self, control: socket.socket) -> None:
        signal.signal(signal.SIGCHLD, _reap)
        spare = self._fork_spare()
        while True:
            data, fds, _flags, _address = socket.recv_fds(control, 65536, 4)
            for fd in fds:
                os.close(fd)
            if not data:  # the host closed the control socket: take the workers along
                _kill_children()
                return
            request = json.loads(data)
            if request.get("t") != "spawn":
                continue
            if spare is None or not spare.assign(int(request["uid"])):
                spare = self._fork_spare()  # the spare died (should not happen): retry once
                if spare is None or not spare.assign(int(request["uid"])):
                    control.send(json.dumps({"t": "error", "message": "fork failed"}).encode())
                    spare = None
                    continue
            try:
                socket.send_fds(control, [json.dumps({"t": "spawned", "pid": spare.pid})
                                          .encode()], spare.host_fds)
            finally:
                spare.close()
            # Off the host's critical path: compile the plan for later workers, and fork
            # the next spare (which inherits the compiled plan).
            _precompile(request.get("source"), request.get("filename"))
            spare = self._fork_spare()

    def _fork_spare(self) -> _Spare | None:
        """Fork a worker that waits, unconfined and idle, for its uid from the zygote.

        Forking and creating the event loop (copy-on-write faults make it ~1 ms in a
        fresh child) take ~3 ms; a spare does them before anyone asks.
        """
        pipes: list[int] = []
        try:
            to_worker_r, to_worker_w = os.pipe()
            from_worker_r, from_worker_w = os.pipe()
            assign_r, assign_w = os.pipe()
            pipes = [to_worker_r, to_worker_w, from_worker_r, from_worker_w, assign_r,
                     assign_w]
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            try:
                pid = os.fork()
                if pid == 0:
                    for fd in (to_worker_w, from_worker_r, assign_w):
                        os.close(fd)
                    worker_main(self.config, read_fd=to_worker_r, write_fd=from_worker_w,
                                assign_fd=assign_r, ruleset_fd=self.ruleset_fd,
                                devnull_fd=self.devnull, zygote_pid=os.getppid())
                _CHILDREN.add(pid)
                # SIGCHLD is blocked, so the child cannot be reaped (and its pid reused)
                # before the pidfd pins it.
                pidfd = os.pidfd_open(pid)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        except OSError:
            for fd in pipes:
                with contextlib.suppress(OSError):
                    os.close(fd)
            return None
        for fd in (to_worker_r, from_worker_w, assign_r):
            os.close(fd)
        return _Spare(pid, pidfd, to_worker_w, from_worker_r, assign_w)


class _Spare:
    """A forked worker waiting for its assignment; the zygote holds its pipe ends."""

    def __init__(self, pid: int, pidfd: int, to_worker: int, from_worker: int,
                 assign: int) -> None:
        self.pid = pid
        self.host_fds = [to_worker, from_worker, pidfd]
        self._assign = assign

    def assign(self, uid: int) -> bool:
        """Tell the spare its uid. False if it is gone."""
        try:
            # It prepares at nice 19; if it is not done yet, finish at full speed.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self.pid, 0)
            os.write(self._assign, json.dumps({"uid": uid}).encode())
            return True
        except OSError:
            self.close()
            return False
        finally:
            os.close(self._assign)
            self._assign = -1

    def close(self) -> None:
        for fd in self.host_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.host_fds = []


_CHILDREN: set[int] = set()


def _precompile(source: object, filename: object) -> None:
    """Compile the plan the new worker is about to run, so it inherits the result.

    compile_plan caches by source; a worker forked after this finds the plan compiled
    (and a plan run by many agents, or by a rebuilt worker, is compiled once here).
    Compiling is parsing and transforming, never running: the host does the same.
    """
    if isinstance(source, str) and isinstance(filename, str):
        from sandbox._compile import compile_plan
        with contextlib.suppress(Exception):  # the worker will report what is wrong
            compile_plan(source, filename=filename)


def _reap(_signum: int, _frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _CHILDREN.discard(pid)


def _kill_children() -> None:
    """SIGKILL and reap every worker, so none outlives the pool (nor counts against
    its uid's RLIMIT_NPROC as a zombie)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in list(_CHILDREN):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in list(_CHILDREN):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    _CHILDREN.clear()


def main() -> None:
    """Entry point: ``main()`` with argv ``[config_json, control_fd]``."""
    config = json.loads(sys.argv[1])
    control = socket.socket(fileno=int(sys.argv[2]))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the host
    if os.getppid() != config["host_pid"]:
        return
    for module in _PRELOAD:
        importlib.import_module(module)
    zygote = _Zygote(config)
    zygote.prepare()
    _warm_up()
    gc.collect()
    gc.freeze()
    layers = [[name, *zygote.layers[name]] for name in LAYER_NAMES]
    control.send(json.dumps({"t": "hello", "pid": os.getpid(), "layers": layers,
                             "applied": [n for n in LAYER_NAMES if zygote.config[n]]}).encode())
    zygote.serve(control)
