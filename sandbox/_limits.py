"""Configuration of the confined workers (`Limits`) and the layer report (`LayerStatus`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LAYER_NAMES", "LayerStatus", "Limits"]

#: The confinement layers applied inside a worker, in the order they are applied.
LAYER_NAMES: tuple[str, ...] = ("close_fds", "rlimits", "net_namespace", "setuid",
                                "no_new_privs", "landlock", "seccomp")


@dataclass(frozen=True)
class Limits:
    """Resource limits and layer switches for confined workers.

    Every layer defaults to on. Switching one off exists for tests that prove the layer
    (the attack must get through with the layer off) and for machines where it breaks
    something; `doctor()` reports what a machine supports.

    Attributes:
        call_timeout: seconds the worker may compute without answering the host (plan
            code between two awaits, or a synchronous step body), in wall-clock time
            and in CPU time since its last call to the host (plan code that keeps
            awaiting its own coroutines still computes). Waiting for the host does not
            count. Past it the worker is SIGKILLed and the run raises
            `SandboxTimeoutError`. Not enforced in inline mode.
        cancel_grace: seconds a worker has, once the host cancels a step body or a
            run (a step timeout, terminate, restart), to show that its event loop turns
            again; a worker still computing after that (a synchronous body that spins)
            is SIGKILLed, and its runs end with a `WorkerCrashedError` whose ``rerun``
            is true. Not enforced in inline mode.
        cpu_seconds: RLIMIT_CPU, a lifetime CPU budget per worker; a worker near it is
            replaced before its next run.
        memory_bytes: RLIMIT_AS, the worker's address space.
        open_files: RLIMIT_NOFILE.
        processes: RLIMIT_NPROC for the worker's own uid (1: no fork, no threads).
        file_size_bytes: RLIMIT_FSIZE (0: no file can be written).
        max_message_bytes: the largest JSON message either side accepts.
        max_bytes_in_flight: bytes one run may have in flight from its worker to the
            host at once (step and capability calls being served, step results not yet
            committed). A message past it is refused, not buffered: its step or
            capability call fails with ``LimitExceededError`` naming this limit, so one
            plan (``gather`` of 400 steps of 1 MB each) cannot fill the host's memory.
        uid_base: first uid/gid of the per-agent range.
        uid_count: size of the per-agent range.
        close_fds: close every inherited descriptor except the worker's pipes.
        rlimits: apply the resource limits above.
        net_namespace: run workers in a private network (and IPC) namespace, created
            once in the zygote.
        setuid: run each agent's worker under its own unprivileged uid/gid, without
            supplementary groups.
        no_new_privs: PR_SET_NO_NEW_PRIVS (Landlock and seccomp need it after setuid).
        landlock: read-only access beneath the interpreter's directories, no TCP bind or
            connect, signals and abstract unix sockets scoped to the worker.
        seccomp: a BPF filter denying socket (except AF_UNIX socketpair), exec, fork-like
            clone, ptrace, mount and other kernel attack surface; x86_64 only.
        unsafe_test_probe: TESTS ONLY. Lets the host run unrestricted Python inside a
            confined worker (`WorkerPool._probe`) to prove what the OS layers stop.
            Plan code cannot use it; never enable it outside tests.
    """

    call_timeout: float = 30.0
    cancel_grace: float = 1.0
    cpu_seconds: int = 300
    memory_bytes: int = 512 * 1024 * 1024
    open_files: int = 32
    processes: int = 1
    file_size_bytes: int = 0
    max_message_bytes: int = 4 * 1024 * 1024
    max_bytes_in_flight: int = 16 * 1024 * 1024
    uid_base: int = 1_500_000_000
    uid_count: int = 1 << 24
    close_fds: bool = True
    rlimits: bool = True
    net_namespace: bool = True
    setuid: bool = True
    no_new_privs: bool = True
    landlock: bool = True
    seccomp: bool = True
    unsafe_test_probe: bool = False

    def __post_init__(self) -> None:
        if not self.call_timeout > 0:
            raise ValueError(f"call_timeout must be > 0, got {self.call_timeout!r}")
        if not self.cancel_grace > 0:
            raise ValueError(f"cancel_grace must be > 0, got {self.cancel_grace!r}")
        if self.max_message_bytes < 64 * 1024:
            raise ValueError("max_message_bytes must be at least 64 KiB")
        if self.max_bytes_in_flight < self.max_message_bytes:
            raise ValueError("max_bytes_in_flight must be at least max_message_bytes "
                             f"({self.max_message_bytes:,})")
        if not (self.uid_base > 0 and self.uid_base + self.uid_count < 2**32 - 1):
            raise ValueError("uid_base/uid_count must stay within 1 .. 2**32-2")

    def to_json(self) -> dict[str, Any]:
        """The limits as a JSON object (sent to the zygote)."""
        return asdict(self)


@dataclass(frozen=True)
class LayerStatus:
    """Whether one defense layer is available (or applied) on this machine.

    Attributes:
        name: the layer, e.g. ``"landlock"``.
        available: true when the layer works here.
        detail: what was probed or applied, or why the layer is missing.
    """

    name: str
    available: bool
    detail: str
