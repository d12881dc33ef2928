"""The documented limits, and the checks that enforce them with errors that say what to do."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentflow.errors import InvalidArgumentError, LimitExceededError
from agentflow.models import ACTIVE_STATUSES, TERMINAL_STATUSES

MAX_STEP_NAME = 256
MAX_STEPS = 10_000
MAX_VALUE_BYTES = 1024 * 1024  # payloads, step results, event payloads, outputs
MAX_INSTANCE_ID = 100
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Quotas:
    """What one tenant (agent) may use, so that none can hurt another or the host.

    Defaults hold for every `AgentFlow`; an operator sets others with
    ``AgentFlow(url, quotas=Quotas(agent_kv_bytes=...))``. Each refusal is a
    `LimitExceededError` that names the quota and how to raise it, and leaves nothing
    half-written (the refused step result, kv write or instance is not stored). The rate
    is the exception: it delays step bodies, it never fails them.

    Attributes:
        run_bytes_in_flight: bytes one run may have in flight between its worker and
            the host (step and capability calls being served, step results not yet
            committed); past it a call or result is refused.
        instance_journal_bytes: bytes of step results and errors one instance's journal
            may hold.
        agent_kv_bytes: bytes (UTF-8 of keys and values) an agent's kv space may hold.
        agent_kv_keys: keys an agent's kv space may hold.
        agent_active_instances: instances of an agent that have not finished (queued,
            running, waiting, paused) at once; `Agent.start` refuses past it.
        agent_total_instances: instances of an agent kept in the store, finished ones
            included.
        agent_steps_per_second: step bodies an agent may start per second, on average;
            more wait their turn (a token bucket of ``agent_step_burst``).
        agent_step_burst: step bodies an agent may start at once before the rate
            applies.
    """

    run_bytes_in_flight: int = 16 * _MIB
    instance_journal_bytes: int = 64 * _MIB
    agent_kv_bytes: int = 64 * _MIB
    agent_kv_keys: int = 10_000
    agent_active_instances: int = 10_000
    agent_total_instances: int = 1_000_000
    agent_steps_per_second: float = 500.0
    agent_step_burst: int = 500

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise InvalidArgumentError(f"Quotas.{name} must be a positive number, got "
                                           f"{value!r}")
        if self.run_bytes_in_flight < 4 * _MIB:
            raise InvalidArgumentError("Quotas.run_bytes_in_flight must be at least 4 MiB "
                                       "(one message between worker and host)")

    def as_dict(self) -> dict[str, int | float]:
        """The quotas by name (for `agentflow doctor`, status and logs)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def quota_error(quota: str, limit: float, what: str, hint: str) -> LimitExceededError:
    """A refusal that names the quota, its value and how to raise it."""
    return LimitExceededError(
        f"{what}: over the quota Quotas.{quota}={limit:,}. {hint} The operator raises it "
        f"with AgentFlow(..., quotas=Quotas({quota}=...)); nothing was written")

# \Z, not $: "$" also matches before a final newline, which would let "id\n" in.
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}\Z")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}\Z")
# What a name must not hold: C0/C1 controls (NUL, newlines, ANSI ESC), zero-width marks,
# bidi marks and overrides, line/paragraph separators. A name is shown to people (CLI,
# console, approval dialogs) and to models (history, MCP): such characters would hide,
# restyle or reorder what they read.
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                         "\u2060-\u2069\ufeff]")


def dumps(value: Any) -> str:
    """Compact JSON as stored; raises TypeError/ValueError for what JSON cannot hold."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_value(value: Any, *, what: str) -> str:
    """JSON-encode a value that agentflow stores, within `MAX_VALUE_BYTES`.

    Raises:
        InvalidArgumentError: the value is not JSON-serializable.
        LimitExceededError: its JSON is over 1 MiB.
    """
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{what} must be JSON-serializable (dict, list, str, int, float, bool, None): "
            f"{exc}") from None
    except RecursionError:
        raise InvalidArgumentError(f"{what} is nested too deeply to store as JSON; "
                                   f"flatten it") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(
            f"{what} must be valid Unicode text: it holds a lone surrogate "
            f"{exc.object[exc.start:exc.end]!a} at character {exc.start} of its JSON, "
            f"which UTF-8 cannot store; decode bytes with errors='replace' first") from None
    if size > MAX_VALUE_BYTES:
        raise LimitExceededError(
            f"{what} is {size:,} bytes as JSON, over the limit of {MAX_VALUE_BYTES:,} bytes "
            f"(1 MiB); store large data elsewhere (a file, a bucket, the kv capability) "
            f"and pass a reference")
    return text


def check_instance_id(instance_id: Any) -> str:
    if isinstance(instance_id, str) and len(instance_id) > MAX_INSTANCE_ID:
        raise LimitExceededError(
            f"instance id {instance_id[:40]!r}... is {len(instance_id)} characters, over the "
            f"limit of {MAX_INSTANCE_ID}; use a shorter id (or a hash of a long key), or "
            f"pass id=None to get a generated one")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
        shown = instance_id if not isinstance(instance_id, str) else instance_id[:120]
        raise InvalidArgumentError(
            f"instance id {shown!r} is invalid: use 1 to {MAX_INSTANCE_ID} characters of "
            f"letters, digits, '_' and '-', or pass id=None to get a generated one")
    return instance_id


def check_event_type(event_type: Any) -> str:
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        shown = event_type if not isinstance(event_type, str) else event_type[:120]
        raise InvalidArgumentError(
            f"event type {shown!r} is invalid: it must match ^[A-Za-z0-9_][A-Za-z0-9_-]{{0,99}}$ "
            f"(letters, digits, '_' and '-', at most 100 characters), e.g. 'approval'")
    return event_type


def check_step_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a step name must be a non-empty string, got {name!r}")
    if not name.isascii() and _LONE_SURROGATE.search(name):
        raise InvalidArgumentError(
            f"step name {name[:40]!a} holds a lone surrogate, which UTF-8 cannot store; "
            f"use plain text")
    if len(name) > MAX_STEP_NAME:
        raise LimitExceededError(
            f"step name {name[:40]!r}... is {len(name)} characters, over the limit of "
            f"{MAX_STEP_NAME}; use a short, stable name and put the details in the step's result")
    bad = _UNSHOWABLE.search(name)
    if bad is not None:
        raise InvalidArgumentError(
            f"step name {name[:60]!a} holds the control, zero-width or bidirectional "
            f"character {bad.group()!a} at position {bad.start()}; step and wait names "
            f"are shown to people and models, so use printable text without them")
    return name


def check_statuses(status: Any) -> list[str] | None:
    """A status filter (one status, a list, or None for all) as a list, checked."""
    if status is None:
        return None
    statuses = [status] if isinstance(status, str) else status
    known = ACTIVE_STATUSES | TERMINAL_STATUSES | {"paused"}
    if not isinstance(statuses, list | tuple | set | frozenset) or any(
            s not in known for s in statuses):
        raise InvalidArgumentError(f"status filter {status!r:.100} is invalid: use one or a "
                                   f"list of {sorted(known)}")
    return list(statuses)
