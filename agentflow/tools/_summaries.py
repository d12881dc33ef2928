"""Plain-text summaries: what a model reads first, so each one says what to do next."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from agentflow.errors import describe_error
from agentflow.tools._activity import error_place
from agentflow.tools._context import is_human_only
from agentflow.tools._models import DiagnosticInfo, InstanceInfo

__all__ = ["describe_diagnostics", "describe_instance", "preview"]


def preview(value: Any, limit: int = 300) -> str:
    """Compact JSON of ``value``, shortened to about ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _when(info: InstanceInfo) -> str:
    assert info.waiting_on is not None
    return info.waiting_on.until.isoformat(timespec="seconds")


def describe_instance(info: InstanceInfo, human_only: Iterable[str]) -> str:
    """One or two sentences: where the instance is and what the agent can do about it,
    then the other waits it is parked on (under gather) and its note, if any."""
    text = _describe_status(info, human_only)
    more = info.waits[1:] if info.status == "waiting" else []
    if more:
        text += f" It also waits on {len(more)} more: " + "; ".join(
            (f"event {w.type!r} at step {w.step!r}" if w.kind == "event" and w.type else
             f"{w.kind} at step {w.step!r}") + f" until {w.until.isoformat(timespec='seconds')}"
            for w in more) + "."
    if info.note:
        text += f" Note: {info.note}"
    return text


def _describe_status(info: InstanceInfo, human_only: Iterable[str]) -> str:
    head = f"Instance {info.id} (plan {info.plan!r}, version {info.version})"
    status = info.status
    w = info.waiting_on
    if status == "complete":
        return f"{head} is complete. Output: {preview(info.output)}"
    if status == "errored":
        err = info.error or {}
        return (f"{head} errored{error_place(err)}: {describe_error(err) or 'Error'}. "
                "Read get_history to find the failing step; fix the plan, submit it, "
                "then restart_instance with upgrade=true.")
    if status == "terminated":
        return f"{head} was terminated; restart_instance runs it again."
    if status == "paused":
        return f"{head} is paused; resume_instance continues it."
    if status == "waiting" and w is not None:
        if w.kind == "event" and w.type:
            if is_human_only(w.type, human_only):
                return (f"{head} is waiting for a person: event {w.type!r} at step "
                        f"{w.step!r}, until {_when(info)}. Call approve to ask a person; "
                        "you cannot send this event yourself.")
            return (f"{head} is waiting for event {w.type!r} at step {w.step!r}, until "
                    f"{_when(info)}. send_event delivers it.")
        if w.kind == "sleep":
            return f"{head} is sleeping at step {w.step!r} until {_when(info)}."
        return (f"{head} will retry step {w.step!r} (attempt {w.attempt}) at {_when(info)}. "
                "get_history shows the last error.")
    return (f"{head} is {status.replace('_', ' ')}. wait_for_instance waits until it "
            "finishes or waits on something.")


def describe_diagnostics(diagnostics: list[DiagnosticInfo], *, shown: int = 5) -> str:
    """The first few problems, one per line, each with its fix."""
    lines = [f"- line {d.line}, col {d.col}, {d.code}: {d.message}. Fix: {d.hint}"
             for d in diagnostics[:shown]]
    more = len(diagnostics) - shown
    if more > 0:
        lines.append(f"- … and {more} more (see diagnostics)")
    return "\n".join(lines)
