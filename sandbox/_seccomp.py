"""A seccomp BPF filter for workers, assembled by hand and installed through ctypes.

No libseccomp binding is needed (pyseccomp works but compiles the filter per worker,
+1.6 ms, SANDBOX.md). Strict mode (mode 1) kills CPython at once, so this is a filter:
a deny list, because CPython's own syscall needs vary by version and an allow list
that misses one kills workers at random.

The filter, in order:

1. The audit arch must be x86_64, else the process is killed (a 32-bit ``int 0x80``
   entry would otherwise reach syscalls under other numbers).
2. Syscall numbers with the x32 bit set are killed (the x32 ABI is another way in).
3. ``socketpair`` is allowed for AF_UNIX only (asyncio's self-pipe needs it);
   ``clone`` only with CLONE_THREAD (a thread, not a new process); ``clone3`` returns
   ENOSYS, which makes libc fall back to ``clone``, whose flags the filter can read.
4. The denied syscalls below return EPERM: sockets, exec, fork, ptrace and
   cross-process memory, mounts and namespaces, module and kexec loading, bpf,
   perf, io_uring (which bypasses seccomp), keyrings, the setuid family (the worker
   has already dropped to its uid) and handle-based opens.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

__all__ = ["DENIED_SYSCALLS", "available", "install"]

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_AF_UNIX, _CLONE_THREAD = 1, 0x00010000

_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_KILL_PROCESS, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16  # struct seccomp_data, little-endian low word

#: x86_64 numbers of the syscalls the filter answers with EPERM.
DENIED_SYSCALLS: dict[str, int] = {
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "pidfd_open": 434, "pidfd_getfd": 438, "process_madvise": 440,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
    "setns": 308, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
    "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163,
    "quotactl": 179, "syslog": 103, "iopl": 172, "ioperm": 173, "uselib": 134,
    "personality": 135, "vhangup": 153, "settimeofday": 164, "clock_settime": 227,
    "adjtimex": 159, "clock_adjtime": 305, "sethostname": 170, "setdomainname": 171,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "fanotify_init": 300,
    "keyctl": 250, "add_key": 248, "request_key": 249,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
    "setresgid": 119, "setgroups": 116, "setfsuid": 122, "setfsgid": 123, "capset": 126,
    "name_to_handle_at": 303, "open_by_handle_at": 304,
}
_SOCKETPAIR, _CLONE, _CLONE3 = 53, 56, 435


_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    return int(_libc.prctl(option, arg2, arg3, 0, 0))


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_Insn = tuple[int, int, int, int]


def available() -> tuple[bool, str]:
    """Whether this filter can be used here: x86_64 Linux with seccomp filters."""
    if platform.machine() != "x86_64":
        return False, f"the filter is written for x86_64, this machine is {platform.machine()}"
    if _prctl(21) < 0:  # PR_GET_SECCOMP
        return False, f"prctl(PR_GET_SECCOMP) failed: {os.strerror(ctypes.get_errno())}"
    return True, (f"BPF deny filter on x86_64: {len(DENIED_SYSCALLS)} syscalls denied, "
                  f"socketpair AF_UNIX only, clone threads only, arch checked, x32 blocked")


_DENY: _Insn = (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)
_ALLOW: _Insn = (_RET_K, 0, 0, _RET_ALLOW)


def _deny_tree(numbers: list[int]) -> list[_Insn]:
    """A binary search over sorted syscall numbers (in the accumulator): EPERM or ALLOW.

    Every syscall the worker makes runs the filter: a search takes ~10 comparisons
    where a list of the denied numbers takes up to 74.
    """
    if len(numbers) <= 3:
        code: list[_Insn] = []
        for number in numbers:
            code += [(_JEQ_K, 0, 1, number), _DENY]
        return [*code, _ALLOW]
    half = len(numbers) // 2
    low, high = _deny_tree(numbers[:half]), _deny_tree(numbers[half:])
    return [(_JGE_K, len(low), 0, numbers[half]), *low, *high]


def _program() -> list[_Insn]:
    return [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
        (_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_JEQ_K, 0, 1, _CLONE3),
        (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        # socketpair: AF_UNIX only. The accumulator is reloaded, so both outcomes return.
        (_JEQ_K, 0, 4, _SOCKETPAIR),
        (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JEQ_K, 0, 1, _AF_UNIX),
        _ALLOW,
        _DENY,
        # clone: threads only.
        (_JEQ_K, 0, 4, _CLONE),
        (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JSET_K, 0, 1, _CLONE_THREAD),
        _ALLOW,
        _DENY,
        *_deny_tree(sorted(set(DENIED_SYSCALLS.values()))),
    ]


_PROGRAM = _program()
# Built once (in the zygote, at import): a worker only makes the prctl call. Building
# the ctypes array in each worker cost ~0.8 ms (copy-on-write faults included).
_ARRAY = (_SockFilter * len(_PROGRAM))(*(_SockFilter(*insn) for insn in _PROGRAM))
_FPROG = _SockFprog(len(_PROGRAM), ctypes.cast(_ARRAY, ctypes.POINTER(_SockFilter)))


def install() -> None:
    """Install the filter on the calling thread. Needs no_new_privs (or CAP_SYS_ADMIN)."""
    if _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(_FPROG)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_SECCOMP): {os.strerror(code)}")
