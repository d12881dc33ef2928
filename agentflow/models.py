"""The values the engine hands back: statuses, what an instance waits on, its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AttemptRecord",
    "Event",
    "InstanceStatus",
    "StatusName",
    "StepRecord",
    "WaitingOn",
]

StatusName = Literal["queued", "running", "waiting", "paused", "waiting_for_pause",
                     "complete", "errored", "terminated"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"complete", "errored", "terminated"})
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running", "waiting", "waiting_for_pause"})


class WaitingOn(BaseModel):
    """What a ``waiting`` instance waits for.

    - ``kind="sleep"``: the sleep named ``step`` ends at ``until``;
    - ``kind="event"``: an event of type ``type`` for the wait named ``step``, which times
      out at ``until``;
    - ``kind="retry"``: attempt number ``attempt`` of the step named ``step`` runs at ``until``.

    ``note`` is what the plan said for whoever answers an event wait
    (``wait_for_event(..., note=...)``): its own words, unverified.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["sleep", "event", "retry"]
    step: str
    until: datetime
    type: str | None = None
    attempt: int | None = None
    note: str | None = None


class InstanceStatus(BaseModel):
    """A snapshot of an instance: its status, and its output, error or wait."""

    model_config = ConfigDict(frozen=True)

    id: str
    workflow: str
    status: StatusName
    output: Any = None
    error: dict[str, Any] | None = None
    waiting_on: WaitingOn | None = None
    #: Every wait a ``waiting`` instance is parked on, earliest first (several under
    #: ``gather``); ``waiting_on`` is the first of them.
    waits: list[WaitingOn] = []
    created_at: datetime
    updated_at: datetime
    #: What the status alone does not say: e.g. that the process running it stopped
    #: renewing its claim, so that the next worker to look takes it over.
    note: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class AttemptRecord(BaseModel):
    """One attempt of a ``do`` step: when it ran, how it failed, what it logged.

    Failed attempts are always kept (the last 20), also once a retry succeeded.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int
    started_at: datetime
    ended_at: datetime
    error: dict[str, Any] | None = None
    logs: list[str] = []


class StepRecord(BaseModel):
    """One entry of an instance's journal, in the order the run reached it.

    ``logs`` are the lines the plan logged (``print`` in agent plans) before this step
    call; each attempt's own lines are in ``attempt_history``. A ``log`` entry at the
    end holds what was logged after the last step.
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    name: str
    n: int
    kind: Literal["do", "sleep", "event", "now", "random", "uuid", "log"]
    status: Literal["ok", "error", "retrying", "waiting"]
    attempts: int
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime
    finished_at: datetime | None = None
    wake_at: datetime | None = None
    logs: list[str] = []
    attempt_history: list[AttemptRecord] = []


@dataclass(frozen=True, slots=True)
class Event:
    """What `run(event, step)` receives: the instance's params and identity."""

    payload: Any
    timestamp: datetime
    instance_id: str
