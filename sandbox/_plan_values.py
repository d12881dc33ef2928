"""Values plan code receives from the host: ``event``, and errors rebuilt from the
host's error payloads (as plan-visible exception classes)."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sandbox._namespace import PLAN_EXCEPTIONS, StepError
from sandbox._protocol import ProtocolError, read_error

__all__ = ["PlanEvent", "rebuild_error"]


def rebuild_error(payload: object) -> Exception:
    """The exception plan code sees for an error sent by the host.

    An error the host marked ``final`` (a capability's refusal, arguments it rejects)
    stays final when a step body lets it through: the step then fails at once. One
    that says ``where`` (a step body's plan frames) keeps it for the run's error."""
    error = _rebuild_error(payload)
    if isinstance(payload, dict) and payload.get("final") is True:
        error._af_final = True  # type: ignore[attr-defined]
    if isinstance(payload, dict) and isinstance(payload.get("where"), dict):
        error._af_where = payload["where"]  # type: ignore[attr-defined]  # the body's
    return error


def _rebuild_error(payload: object) -> Exception:
    try:
        name, message, error_name, args = read_error(payload)
    except ProtocolError as exc:
        return StepError(str(exc))
    if name == "StepError":
        return StepError(message, error_name=error_name or "StepError")
    cls = PLAN_EXCEPTIONS.get(name)
    if cls is None:
        return StepError(message, error_name=name)
    try:
        return cls(*args) if args is not None else cls(message)
    except Exception:
        return StepError(message, error_name=name)


class PlanEvent:
    """``event`` inside a plan."""

    __slots__ = ("instance_id", "payload", "timestamp")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.payload = raw.get("payload")
        timestamp = raw.get("timestamp")
        self.timestamp: datetime | Any = timestamp
        if isinstance(timestamp, str):
            with contextlib.suppress(ValueError):
                self.timestamp = datetime.fromisoformat(timestamp)
        self.instance_id = raw.get("instance_id")

    def __repr__(self) -> str:
        return f"<event instance_id={self.instance_id!r}>"
