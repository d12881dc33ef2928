"""Five-field cron expressions, evaluated in a time zone, correct across DST changes.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range ``a-b``, a
step ``*/n`` or ``a-b/n`` (or ``a/n``: from a to the end), or a comma list of those.
Months and weekdays also take names (``jan``, ``mon``); Sunday is 0 or 7. As in Vixie
cron, when both day-of-month and day-of-week are restricted a day matching *either*
fires. Macros: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily``
(``@midnight``), ``@hourly``.

Daylight saving time (the rules cronie and systemd follow): a wall-clock time that does
not exist on a spring-forward day fires at the first minute that does (02:30 in a gap
from 02:00 to 03:00 fires at 03:00); a time that happens twice on a fall-back day fires
once, at its first occurrence.

Written here rather than taken from croniter: the whole rule set is this page, and the
DST handling, which is where such libraries differ, is ours to state and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from agentflow.errors import InvalidArgumentError

__all__ = ["CronExpression"]

_MONTHS = {name: i for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    start=1)}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
_SEARCH_YEARS = 8  # far enough for Feb 29 on a given weekday; beyond it: "never fires"


def _number(text: str, what: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower())
    if value is None:
        if not text.isdigit():
            raise InvalidArgumentError(f"cron {what} {text!r} is not a number"
                                       + (f" or a name ({', '.join(names)})" if names else ""))
        value = int(text)
    if not low <= value <= high:
        raise InvalidArgumentError(f"cron {what} {value} is out of range {low}-{high}")
    return value


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidArgumentError(f"cron {what} step {step_text!r} must be a "
                                           "positive number")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            start, end = (_number(a, what, low, high, names), _number(b, what, low, high, names))
            if start > end:
                raise InvalidArgumentError(f"cron {what} range {body!r} runs backwards")
        elif body:
            start = _number(body, what, low, high, names)
            end = high if slash else start
        else:
            raise InvalidArgumentError(f"cron {what} has an empty item in {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression. `CronExpression.parse` checks it; `next_after` finds
    fire times.

    Example:
        cron = CronExpression.parse("30 9 * * mon-fri")
        cron.next_after(datetime(2026, 3, 27, 12, tzinfo=UTC), ZoneInfo("Europe/Berlin"))
    """

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is "*"
    any_weekday: bool  # day of week is "*"

    @classmethod
    def parse(cls, text: str) -> CronExpression:
        """Parse five fields (or a macro such as ``@daily``).

        Raises:
            InvalidArgumentError: not five fields, a value out of range, an unknown name,
                or an expression that can never fire (``0 0 30 2 *``).
        """
        if not isinstance(text, str):
            raise InvalidArgumentError(f"a cron expression must be a string, not {text!r}")
        fields = _MACROS.get(text.strip().lower(), text).split()
        if len(fields) != 5:
            raise InvalidArgumentError(
                f"cron expression {text!r} must have 5 fields (minute hour day-of-month "
                "month day-of-week), e.g. '0 9 * * mon-fri'")
        parsed = [_field(f, what, low, high, names)
                  for f, (what, low, high, names) in zip(fields, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in parsed[4])
        cron = cls(text, parsed[0], parsed[1], parsed[2], parsed[3], weekdays,
                   any_day=fields[2] == "*", any_weekday=fields[4] == "*")
        if cron.next_after(datetime(2000, 1, 1, tzinfo=UTC), UTC) is None:
            raise InvalidArgumentError(f"cron expression {text!r} never fires")
        return cron

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week  # both restricted: either fires (Vixie cron)

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first fire time strictly after ``after`` (an aware datetime), in UTC;
        None if there is none within the next eight years."""
        after = after.astimezone(UTC)
        day = after.astimezone(tz).date() - timedelta(days=1)  # a gap may move a time on
        for _ in range(366 * _SEARCH_YEARS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        when = _resolve(datetime(day.year, day.month, day.day, hour, minute),
                                        tz)
                        if when > after:
                            return when
            day += timedelta(days=1)
        return None


def _resolve(local: datetime, tz: tzinfo) -> datetime:
    """The instant (UTC) a naive wall-clock time in ``tz`` fires at: its first
    occurrence, or, in a spring-forward gap, the first minute after the gap."""
    first = local.replace(tzinfo=tz, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local:
        return instant
    probe = local
    for _ in range(24 * 60):  # gaps are at most a few hours
        probe += timedelta(minutes=1)
        candidate = probe.replace(tzinfo=tz).astimezone(UTC)
        if candidate.astimezone(tz).replace(tzinfo=None) == probe:
            return candidate
    return instant  # pragma: no cover - no zone has a day-long gap
