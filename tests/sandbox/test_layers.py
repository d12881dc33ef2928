"""Each confinement layer, proven by an attack that gets through when only it is off.

The attacks run as unrestricted Python inside a confined worker (`WorkerPool._probe`,
enabled by ``Limits(unsafe_test_probe=True)``): they model a plan that has already
escaped layers 1-2. For every layer, the same attack is run twice, with the layer off
(it must succeed: the test proves the attack is real) and with it on (it must be
stopped). Layers overlap on purpose (defense in depth), so where another layer would
also stop an attack, that other layer is off in both runs and the test says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import Limits, WorkerCrashedError, WorkerPool
from sandbox._landlock import abi_version
from sandbox._seccomp import available as seccomp_available
from tests.sandbox.support import RecordingHost, make_event, plan, wait_until

ROOT = os.geteuid() == 0
pytestmark = [
    pytest.mark.skipif(not ROOT, reason="the per-agent uid layer needs a root host"),
    pytest.mark.skipif(not abi_version(), reason="the kernel has no Landlock"),
    pytest.mark.skipif(not seccomp_available()[0], reason="seccomp filter is x86_64-only"),
]


@contextlib.asynccontextmanager
async def confined(**switches: bool) -> AsyncIterator[WorkerPool]:
    limits = Limits(call_timeout=10.0, memory_bytes=256 * 1024 * 1024,
                    unsafe_test_probe=True, **switches)
    async with WorkerPool(limits=limits) as pool:
        yield pool


async def attack(pool: WorkerPool, code: str, agent: str = "attacker") -> Any:
    """Run ``code`` (which sets ``result``) in the agent's worker; return the result."""
    reply = await pool._probe(f"{agent}-{id(pool)}", code)
    if "error" in reply:
        return f"raised {reply['error']}"
    return reply["value"]


async def start(pool: WorkerPool, agent: str) -> int:
    agent = f"{agent}-{id(pool)}"
    await pool.run_plan(agent, plan("return 1"), make_event(), RecordingHost(),
                        capabilities=[])
    pid = pool.worker_pid(agent)
    assert pid is not None
    return pid


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:  # gone, or being reaped (ESRCH)
        return False


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A world-writable directory outside the interpreter's tree."""
    path = tempfile.mkdtemp(prefix="sandbox-layer-", dir="/tmp")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the layers are really applied here ---------------------------------------------------

async def test_every_layer_is_applied_to_a_real_worker() -> None:
    async with confined() as pool:
        assert [s.name for s in pool.layers if s.available] == [
            "close_fds", "rlimits", "net_namespace", "setuid", "no_new_privs", "landlock",
            "seccomp"]
        pid = await start(pool, "inspected")
        connection = pool._workers[f"inspected-{id(pool)}"]
        assert set(connection.layers) == {s.name for s in pool.layers}
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines())
        uid = connection.uid
        assert status["Uid"].split() == [str(uid)] * 4
        assert status["Gid"].split() == [str(uid)] * 4
        assert status["Groups"].strip() == ""
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        with open(f"/proc/{pid}/limits") as f:
            limits = f.read()
        assert "Max address space         268435456" in limits
        assert "Max processes             1 " in limits
        assert "Max file size             0 " in limits
        assert "Max core file size        0 " in limits
        fds = os.listdir(f"/proc/{pid}/fd")
        assert len(fds) <= 8  # stdio, two pipes, epoll, asyncio's socketpair
        assert await attack(pool, "import os\nresult = os.getuid()", "inspected") == uid


# -- close_fds -----------------------------------------------------------------------------

HOLDS_ZYGOTE_SOCKET = '''
import os, socket, stat
found = []
for fd in range(256):
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    if stat.S_ISSOCK(mode):
        s = socket.socket(fileno=fd)
        try:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_SEQPACKET:
                found.append(fd)
        finally:
            s.detach()
result = found
'''


async def test_close_fds_takes_the_zygote_control_socket_away() -> None:
    # With it, a worker could order the zygote to fork root workers.
    async with confined(close_fds=False) as pool:
        assert await attack(pool, HOLDS_ZYGOTE_SOCKET) != []  # escaped
    async with confined() as pool:
        assert await attack(pool, HOLDS_ZYGOTE_SOCKET) == []  # stopped


# -- rlimits -------------------------------------------------------------------------------

EXHAUST = '''
import os
out = {}
try:
    block = bytearray(512 * 1024 * 1024)
    out["memory"] = "allocated 512 MiB"
    del block
except MemoryError:
    out["memory"] = "MemoryError"
fds = []
try:
    for _ in range(100):
        fds.extend(os.pipe())
    out["files"] = "opened 200 descriptors"
except OSError as exc:
    out["files"] = exc.errno
for fd in fds:
    os.close(fd)
result = out
'''


async def test_rlimits_cap_memory_and_descriptors() -> None:
    async with confined(rlimits=False) as pool:
        assert await attack(pool, EXHAUST) == {"memory": "allocated 512 MiB",
                                               "files": "opened 200 descriptors"}
    async with confined() as pool:
        assert await attack(pool, EXHAUST) == {"memory": "MemoryError",
                                               "files": errno.EMFILE}


# -- net_namespace -------------------------------------------------------------------------

SEND_UDP = '''
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b"escaped", ("127.0.0.1", {port}))
    result = "sent"
except OSError as exc:
    result = exc.errno
finally:
    s.close()
'''


async def test_the_network_namespace_cuts_the_worker_off_the_host_network() -> None:
    # seccomp (no socket()) would also stop this: it is off in both runs. Landlock
    # does not cover UDP and stays on.
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with confined(seccomp=False, net_namespace=False) as pool:
            assert await attack(pool, SEND_UDP.format(port=port)) == "sent"
            received = await asyncio.wait_for(loop.sock_recv(listener, 100), 10)
            assert received == b"escaped"  # escaped to the host's loopback
        async with confined(seccomp=False) as pool:
            assert await attack(pool, SEND_UDP.format(port=port)) == errno.ENETUNREACH
    finally:
        listener.close()


# -- setuid (one uid per agent) -----------------------------------------------------------

KILL = '''
import os, signal
try:
    os.kill({pid}, signal.SIGKILL)
    result = "killed"
except OSError as exc:
    result = exc.errno
'''
READ = '''
try:
    with open({path!r}) as f:
        result = f.read()
except OSError as exc:
    result = exc.errno
'''


async def test_per_agent_uids_stop_workers_signalling_each_other() -> None:
    # Landlock's signal scoping would also stop it: off in both runs.
    async with confined(landlock=False, setuid=False) as pool:
        victim = await start(pool, "victim")
        assert await attack(pool, KILL.format(pid=victim)) == "killed"
        await wait_until(lambda: not alive(victim), what="victim killed")
    async with confined(landlock=False) as pool:
        victim = await start(pool, "victim")
        assert await attack(pool, KILL.format(pid=victim)) == errno.EPERM
        assert alive(victim)


async def test_per_agent_uids_stop_reading_files_of_other_users() -> None:
    # Landlock (read-only beneath the interpreter) would also stop it: off in both runs.
    directory = tempfile.mkdtemp(prefix="sandbox-secret-", dir="/tmp")
    os.chmod(directory, 0o755)
    secret = os.path.join(directory, "secret")
    with open(secret, "w") as f:
        f.write("host secret")
    os.chmod(secret, 0o600)
    try:
        async with confined(landlock=False, setuid=False) as pool:
            assert await attack(pool, READ.format(path=secret)) == "host secret"
        async with confined(landlock=False) as pool:
            assert await attack(pool, READ.format(path=secret)) == errno.EACCES
    finally:
        shutil.rmtree(directory)


# -- no_new_privs --------------------------------------------------------------------------

# The host SIGKILLs a worker whose pipe closes; keep the pipes open across exec so the
# exec'd program lives long enough to show what it can do.
KEEP_PIPES_OPEN = '''
import os
for fd in range(3, 64):
    try:
        os.set_inheritable(fd, True)
    except OSError:
        pass
'''


async def test_no_new_privs_makes_setuid_binaries_powerless(shared_dir: str) -> None:
    # seccomp and Landlock would stop the exec itself: both off in both runs.
    tool = os.path.join(shared_dir, "suid-touch")
    shutil.copy("/usr/bin/touch", tool)
    os.chmod(tool, 0o4755 | stat.S_ISUID)
    for switches, agent, expected_owner in (
            ({"no_new_privs": False}, "nnp-off", 0),  # escaped: root again
            ({"no_new_privs": True}, "nnp-on", None)):
        marker = os.path.join(shared_dir, agent)
        async with confined(seccomp=False, landlock=False, **switches) as pool:
            await start(pool, agent)
            uid = pool._workers[f"{agent}-{id(pool)}"].uid
            with pytest.raises(WorkerCrashedError):  # exec replaced the worker
                await attack(pool, KEEP_PIPES_OPEN + f"os.execv({tool!r}, [{tool!r}, "
                                                     f"{marker!r}])", agent)
        owner = os.stat(marker).st_uid
        assert owner == (uid if expected_owner is None else expected_owner)


# -- landlock ------------------------------------------------------------------------------

WRITE = '''
try:
    with open({path!r}, "x") as f:
        pass
    result = "created"
except OSError as exc:
    result = exc.errno
'''


async def test_landlock_confines_the_filesystem(shared_dir: str) -> None:
    hostname = Path("/etc/hostname").read_text()  # world-readable, outside the interpreter
    async with confined(landlock=False) as pool:
        assert await attack(pool, READ.format(path="/etc/hostname")) == hostname
        target = os.path.join(shared_dir, "off")
        assert await attack(pool, WRITE.format(path=target)) == "created"
    async with confined() as pool:
        assert await attack(pool, READ.format(path="/etc/hostname")) == errno.EACCES
        target = os.path.join(shared_dir, "on")
        assert await attack(pool, WRITE.format(path=target)) == errno.EACCES
        assert not os.path.exists(target)


async def test_landlock_scopes_signals_to_the_worker() -> None:
    # Per-agent uids would also stop it: off (everyone root) in both runs.
    async with confined(setuid=False, landlock=False) as pool:
        victim = await start(pool, "victim")
        assert await attack(pool, KILL.format(pid=victim)) == "killed"
    async with confined(setuid=False) as pool:
        victim = await start(pool, "victim")
        assert await attack(pool, KILL.format(pid=victim)) == errno.EPERM
        assert alive(victim)


# -- seccomp -------------------------------------------------------------------------------

MAKE_SOCKET = '''
import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    result = "socket created"
except OSError as exc:
    result = exc.errno
'''
FORK = '''
import os
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    result = "forked"
except OSError as exc:
    result = exc.errno
'''
X32 = '''
import ctypes
result = ctypes.CDLL(None, use_errno=True).syscall(0x40000000 | 39)
'''
EXEC = '''
import os
try:
    os.execv("/bin/true", ["/bin/true"])
except OSError as exc:
    result = exc.errno
'''


async def test_seccomp_denies_sockets() -> None:
    # The network namespace only makes sockets useless; it does not stop creating them.
    async with confined(seccomp=False) as pool:
        assert await attack(pool, MAKE_SOCKET) == "socket created"
    async with confined() as pool:
        assert await attack(pool, MAKE_SOCKET) == errno.EPERM


async def test_seccomp_denies_fork() -> None:
    # RLIMIT_NPROC would also stop it, but does not bind root: uids off in both runs.
    async with confined(setuid=False, seccomp=False) as pool:
        assert await attack(pool, FORK) == "forked"
    async with confined(setuid=False) as pool:
        assert await attack(pool, FORK) == errno.EPERM


async def test_seccomp_denies_exec() -> None:
    # Landlock (no execute right) would also stop it: off in both runs.
    async with confined(landlock=False, seccomp=False) as pool:
        with pytest.raises(WorkerCrashedError):  # /bin/true replaced the worker
            await attack(pool, EXEC)
    async with confined(landlock=False) as pool:
        assert await attack(pool, EXEC) == errno.EPERM


async def test_seccomp_kills_the_x32_abi() -> None:
    async with confined(seccomp=False) as pool:
        assert isinstance(await attack(pool, X32), int)  # the call returned
    async with confined() as pool:
        with pytest.raises(WorkerCrashedError):
            await attack(pool, X32)


def test_a_spare_finds_its_event_loop_descriptors_exactly() -> None:
    # The spare keeps the descriptors its event loop opened through close_fds; it finds
    # them by listing /proc/self/fd (probing 1,024 numbers cost ~0.7 ms per worker).
    from sandbox._worker import _open_fds

    before = _open_fds()
    read, write = os.pipe()
    try:
        assert _open_fds() - before == {read, write}
        assert _open_fds() == {fd for fd in range(4096) if _is_open(fd)}
    finally:
        os.close(read)
        os.close(write)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
