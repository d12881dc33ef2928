"""Durations, points in time and retry policies, parsed once and checked early.

A duration is a number of **seconds** (the Python convention; Cloudflare uses
milliseconds), a `timedelta`, or a string such as ``"90 seconds"``, ``"3 days"``,
``"1.5 hours"`` or ``"250 ms"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from agentflow.errors import InvalidArgumentError, LimitExceededError

MAX_WAIT_SECONDS = 365 * 24 * 3600.0

_UNITS = {
    "ms": 0.001, "msec": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
    "w": 604800.0, "week": 604800.0, "weeks": 604800.0,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]+)\s*\Z")

Duration = float | int | timedelta | str


def parse_duration(value: Any, *, what: str = "duration") -> float:
    """Return a duration in seconds.

    Args:
        value: seconds as a number, a `timedelta`, or a string like ``"3 days"``.
        what: how the caller names this value, for the error message.

    Raises:
        InvalidArgumentError: the value is negative, not finite, or not understood.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a number of seconds, a timedelta or a string "
                                   f"like '10 seconds', not a bool")
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION.match(value)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise InvalidArgumentError(
                f"{what} {value!r} is not understood: write a number and a unit, such as "
                f"'90 seconds', '10 minutes', '3 days' or '1 week' (a bare number means seconds)")
        seconds = float(match.group(1)) * _UNITS[unit]
    else:
        raise InvalidArgumentError(f"{what} must be a number of seconds, a timedelta or a string "
                                   f"like '10 seconds', not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{what} must be a finite, non-negative duration, "
                                   f"got {value!r:.60}")
    return seconds


def parse_wait(value: Any, *, what: str) -> float:
    """A sleep or wait duration: like `parse_duration`, capped at 365 days."""
    seconds = parse_duration(value, what=what)
    if seconds > MAX_WAIT_SECONDS:
        raise LimitExceededError(f"{what} {value!r} is longer than the limit of 365 days; "
                                 f"split the wait or store a date and sleep in steps")
    return seconds


def parse_instant(value: Any, *, what: str = "time") -> float:
    """Return epoch seconds for a `datetime` (naive means UTC) or a number of epoch seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(value.timestamp())
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
        raise InvalidArgumentError(f"{what} must be a finite number of epoch seconds, "
                                   f"got {value!r:.60}")
    raise InvalidArgumentError(f"{what} must be a datetime or epoch seconds, "
                               f"not {type(value).__name__}")


def iso_datetime(value: Any, *, what: str) -> Any:
    """``value`` as a `datetime` when it is a string (ISO 8601); any other value as it
    is, for `parse_instant` to judge.

    Raises:
        InvalidArgumentError: a string that is not an ISO 8601 date-time.
    """
    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgumentError(f"{what} {value[:60]!r} is not an ISO 8601 date-time "
                                   "such as '2026-03-01T09:00'") from None


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


Backoff = Literal["constant", "linear", "exponential"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing `step.do` is retried. ``limit`` counts retries: attempts = limit + 1."""

    limit: int = 5
    delay: float = 10.0
    backoff: Backoff = "exponential"

    def delay_before_retry(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        if self.backoff == "constant":
            seconds = self.delay
        elif self.backoff == "linear":
            seconds = self.delay * retry
        else:
            seconds = self.delay * 2.0 ** min(retry - 1, 64)
        return min(seconds, MAX_WAIT_SECONDS)

    @classmethod
    def parse(cls, value: Any) -> RetryPolicy:
        """Build a policy from ``None``, a `RetryPolicy`, or a dict with any of
        ``limit``, ``delay`` and ``backoff``; missing keys take the defaults."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if not isinstance(value, dict):
            raise InvalidArgumentError(
                "retries must be a dict like {'limit': 5, 'delay': '10 seconds', "
                f"'backoff': 'exponential'}}, not {type(value).__name__}")
        unknown = set(value) - {"limit", "delay", "backoff"}
        if unknown:
            raise InvalidArgumentError(f"retries has unknown keys {sorted(unknown)}; "
                                       "use limit, delay and backoff")
        limit = value.get("limit", cls.limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgumentError(f"retries['limit'] must be an integer >= 0, got {limit!r}")
        if limit > 10_000:
            raise LimitExceededError(f"retries['limit'] {limit} is over the limit of 10,000")
        delay = parse_wait(value.get("delay", cls.delay), what="retries['delay']")
        backoff = value.get("backoff", cls.backoff)
        if backoff not in ("constant", "linear", "exponential"):
            raise InvalidArgumentError(f"retries['backoff'] must be 'constant', 'linear' or "
                                       f"'exponential', got {backoff!r}")
        return cls(limit=limit, delay=delay, backoff=backoff)
