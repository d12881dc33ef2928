"""One timestamp format in every command's JSON: ISO 8601 in UTC ending in ``Z``, as
pydantic writes the models' datetimes (``2026-03-01T09:00:00.250000Z``)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso"]


def iso(when: datetime | float) -> str:
    """``when`` (an aware datetime or epoch seconds) as ISO 8601 UTC with a ``Z``."""
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
