"""Notebook helpers: an instance's history as a timeline you can look at.

Example:
    from agentflow.notebook import Timeline
    Timeline(await inst.history(), await inst.status())   # renders as an HTML table
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from agentflow.errors import describe_error
from agentflow.models import InstanceStatus, StepRecord

__all__ = ["Timeline", "activity_lines"]

_COLORS = {"ok": "#2e7d32", "error": "#c62828", "retrying": "#ef6c00", "waiting": "#1565c0"}


class Timeline:
    """A history rendered as a table: HTML in a notebook, text elsewhere."""

    def __init__(self, history: Sequence[StepRecord], status: InstanceStatus | None = None
                 ) -> None:
        self.history = list(history)
        self.status = status

    def rows(self) -> list[dict[str, str]]:
        out = []
        for h in self.history:
            took = ((h.finished_at - h.started_at).total_seconds() if h.finished_at else None)
            if h.error:
                detail = describe_error(h.error)
            elif h.status in ("waiting", "retrying") and h.wake_at:
                detail = f"until {h.wake_at:%Y-%m-%d %H:%M:%S} UTC"
            else:
                detail = json.dumps(h.result)
            out.append({"#": str(h.seq), "kind": h.kind, "step": h.name, "status": h.status,
                        "attempts": str(h.attempts),
                        "started": f"{h.started_at:%Y-%m-%d %H:%M:%S}",
                        "took": "" if took is None else _human(took), "detail": detail})
        return out

    def _repr_html_(self) -> str:
        rows = self.rows()
        head = "".join(f"<th>{html.escape(k)}</th>" for k in (rows[0] if rows else {"#": ""}))
        body = []
        for r in rows:
            color = _COLORS.get(r["status"], "inherit")
            cells = "".join(
                f'<td style="color:{color}">{html.escape(v)}</td>' if k == "status"
                else f"<td>{html.escape(v[:200])}</td>" for k, v in r.items())
            body.append(f"<tr>{cells}</tr>")
        caption = ""
        if self.status is not None:
            caption = (f"<caption>{html.escape(self.status.id)}: "
                       f"<b>{html.escape(self.status.status)}</b></caption>")
        notes = "".join(f"<li>{html.escape(line[:300])}</li>"
                        for line in self.notes())
        return (f'<table class="agentflow-timeline">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>"
                + (f'<ul class="agentflow-activity">{notes}</ul>' if notes else ""))

    def notes(self) -> list[str]:
        """Where the error happened, failed attempts and printed lines (see
        `activity_lines`)."""
        lines = []
        error = self.status.error if self.status is not None else None
        where = error.get("where") if error else None
        at = error.get("at") if error else None
        if error and isinstance(where, dict):
            step, after = error.get("step"), error.get("after_step")
            if not isinstance(at, str):
                at = (f"in step {step!r}" if step else
                      f"after step {after!r}" if after else None)
            lines.append(f"error at plan line {where.get('line')} in {where.get('function')}"
                         + (f", {at}" if at else "") + f": {where.get('source', '')}")
        elif error and isinstance(at, str):  # no plan line: the value `run` returned
            lines.append(f"error {at}")
        return lines + activity_lines(self.history)

    def __str__(self) -> str:
        lines = [f"{r['#']:>3} {r['kind']:<6} {r['step']:<20} {r['status']:<8} "
                 f"x{r['attempts']} {r['took']:>8}  {r['detail'][:60]}" for r in self.rows()]
        if self.status is not None:
            lines.insert(0, f"{self.status.id}: {self.status.status}")
        return "\n".join(lines + self.notes())

    __repr__ = __str__


def activity_lines(history: Sequence[StepRecord]) -> list[str]:
    """Each failed attempt (kept after a retry succeeded) and each printed line, by step.

    Example: ``attempt 1 of 'send mail' failed at 2026-12-05T10:00:00+00:00:
    ConnectionError: mail server busy`` and ``log before 'send mail': preparing``.
    """
    lines = []
    for r in history:
        for text in r.logs:
            lines.append(f"log {'(end)' if r.kind == 'log' else f'before {r.name!r}'}: {text}")
        for a in r.attempt_history:
            if a.error:
                lines.append(f"attempt {a.attempt} of {r.name!r} failed at "
                             f"{a.ended_at.isoformat(timespec='seconds')}: "
                             f"{a.error.get('name')}: {a.error.get('message')}")
            lines.extend(f"log {r.name!r} attempt {a.attempt}: {text}" for text in a.logs)
    return lines


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.3f}s"
