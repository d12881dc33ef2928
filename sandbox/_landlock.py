"""Landlock through raw syscalls (ctypes): no package needed.

The ruleset handles every filesystem right the kernel's ABI knows and allows only
``READ_FILE | READ_DIR`` beneath the interpreter's directories; it denies TCP bind and
connect (ABI >= 4, no port rule is added) and scopes abstract unix sockets and signals
to the worker's own domain (ABI >= 6). It is built once in the zygote, while still
root: opening the O_PATH descriptors fails after setuid (SANDBOX.md). Each worker then
calls `restrict_self` after no-new-privs; each call makes a new domain, so sibling
workers cannot signal each other.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["abi_version", "build_ruleset", "restrict_self"]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # all arches
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

_FS_EXECUTE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 2, 1 << 3
_FS_BITS_BY_ABI = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}  # number of fs rights per ABI
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64),
                ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    result = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(result), 0)


def build_ruleset(read_only_paths: list[str], abi: int) -> tuple[int, str]:
    """Create the worker ruleset. Returns its fd and a description of what it handles."""
    fs_bits = _FS_BITS_BY_ABI.get(abi, 16)
    attr = _RulesetAttr(handled_access_fs=(1 << fs_bits) - 1)
    size = 8
    detail = [f"ABI {abi}: read-only beneath {', '.join(read_only_paths)}"]
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
        detail.append("no TCP bind/connect")
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
        detail.append("signals and abstract unix sockets scoped")
    fd = _check(_libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                              ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for path in read_only_paths:
            parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = _PathBeneathAttr(allowed_access=_FS_READ_FILE | _FS_READ_DIR,
                                        parent_fd=parent)
                _check(_libc.syscall(_SYS_ADD_RULE, ctypes.c_int(fd),
                                     ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                                     ctypes.c_uint32(0)), f"landlock_add_rule({path})")
            finally:
                os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd, "; ".join(detail)


def restrict_self(ruleset_fd: int) -> None:
    """Enforce the ruleset on the calling process (needs no_new_privs or CAP_SYS_ADMIN)."""
    _check(_libc.syscall(_SYS_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)),
           "landlock_restrict_self")
