"""What a run did, read from its journal: printed lines, failed attempts, error places.

Shared by ``get_instance``, ``get_history`` and the debug prompt, so each shows a plan's
logs, its failed attempts and where its error happened the same way.
"""

from __future__ import annotations

from typing import Any

from agentflow.models import StepRecord
from agentflow.tools._models import FailedAttempt

__all__ = ["MAX_LOG_LINES_SHOWN", "error_place", "failed_attempts", "recent_logs"]

MAX_LOG_LINES_SHOWN = 50
MAX_ATTEMPTS_SHOWN = 10


def recent_logs(records: list[StepRecord], limit: int = MAX_LOG_LINES_SHOWN) -> list[str]:
    """The last ``limit`` printed lines, in order, each marked with its step:
    ``[before 'send'] ...`` for plan code, ``['send' attempt 2] ...`` for a step body."""
    lines: list[str] = []
    for r in records:
        label = "after the last step" if r.kind == "log" else f"before {r.name!r}"
        lines.extend(f"[{label}] {line}" for line in r.logs)
        for a in r.attempt_history:
            lines.extend(f"[{r.name!r} attempt {a.attempt}] {line}" for line in a.logs)
    return lines[-limit:]


def failed_attempts(records: list[StepRecord], limit: int = MAX_ATTEMPTS_SHOWN
                    ) -> list[FailedAttempt]:
    """The last ``limit`` failed attempts of any step, oldest first."""
    found = [FailedAttempt(step=r.name, attempt=a.attempt, at=a.ended_at, error=a.error)
             for r in records for a in r.attempt_history if a.error is not None]
    found.sort(key=lambda f: f.at)
    return found[-limit:]


def error_place(error: dict[str, Any] | None) -> str:
    """`` at line 3 in parse (`return int(text)`), in step 'fetch'``, ``, in the return
    value of run, after step 'load'`` (no plan line) or ``""``."""
    if not error:
        return ""
    text = ""
    where = error.get("where")
    if isinstance(where, dict) and "line" in where:
        text += f" at line {where['line']} in {where.get('function', '?')}"
        if where.get("source"):
            text += f" (`{where['source']}`)"
    if isinstance(error.get("at"), str):  # in words: "before the first step", ...
        text += f", {error['at']}"
    elif error.get("step"):
        text += f", in step {error['step']!r}"
    elif error.get("after_step"):
        text += f", after step {error['after_step']!r}"
    return text
