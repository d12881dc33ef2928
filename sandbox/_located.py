"""Where a plan's error happened, and what it printed: both sides of the boundary.

In the worker, `locate` walks an exception's traceback and keeps the frames of plan
code only (their code objects carry the plan's filename): the line, the function and
the source text of that line. Host frames, the runtime's own and any path are dropped,
so nothing about the host leaks into an error a model reads. `LogBuffer` collects
``print`` output for one step body or one stretch of plan code, capped in size.

On the host, `read_where` and `read_logs` check what a worker sent (it is untrusted)
and cap it again, and `place_words` says in words where in the run an error happened:
in a step, after one, before the first, or in the value ``run`` returned.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

__all__ = [
    "MAX_LOG_CHARS",
    "MAX_TRACE_FRAMES",
    "LogBuffer",
    "describe_error",
    "locate",
    "place_words",
    "read_logs",
    "read_where",
]

#: print output kept per step attempt (and per stretch of plan code between steps).
MAX_LOG_CHARS = 8_000
MAX_LOG_LINES = 200
MAX_TRACE_FRAMES = 20
_MAX_SOURCE = 240
_MAX_FUNCTION = 100

_EMPTY_MESSAGES: dict[str, str] = {
    "MemoryError": "the plan ran out of memory (its worker's memory limit); build smaller "
                   "values, or split the work into steps",
    "RecursionError": "maximum recursion depth exceeded",
    "StopIteration": "a loop or next() ran past the end",
}


def describe_error(name: str, message: str) -> str:
    """A message for errors Python leaves empty (``MemoryError()``, ``KeyError()``)."""
    if message.strip():
        return message
    return _EMPTY_MESSAGES.get(name, f"{name} raised with no message")


def locate(exc: BaseException, filename: str, source: str) -> dict[str, Any] | None:
    """The plan frames of ``exc``'s traceback, innermost last, or None if none is.

    Returns ``{"line", "function", "source", "traceback": [{"line", "function",
    "source"}, ...]}`` where the top-level keys describe the innermost plan frame.
    """
    lines = source.splitlines()
    frames: list[dict[str, Any]] = []
    tb: TracebackType | None = exc.__traceback__
    seen = 0
    while tb is not None and seen < 1000:  # a traceback is finite; this bounds the walk
        seen += 1
        code = tb.tb_frame.f_code
        if code.co_filename == filename:
            line = tb.tb_lineno
            text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            frames.append({"line": line, "function": _function(code.co_name),
                           "source": text[:_MAX_SOURCE]})
        tb = tb.tb_next
    if not frames:
        return None
    frames = frames[-MAX_TRACE_FRAMES:]
    return {**frames[-1], "traceback": frames}


def place_words(step: str | None, after_step: str | None, *, returned: bool = False) -> str:
    """Where in a run a plan error happened, in words a model can act on.

    ``"in step 'fetch'"`` (the step's own error), ``"after step 'fetch'"`` (plan code
    between steps), ``"before the first step"`` (plan code before any step returned),
    ``"in the return value of run, after step 'fetch'"`` (what ``run`` returned could
    not be kept: not JSON, or too large), ``"in the return value of run, before any
    step"``.
    """
    if returned:
        return "in the return value of run, " + (
            f"after step {after_step!r}" if after_step else "before any step")
    if step:
        return f"in step {step!r}"
    if after_step:
        return f"after step {after_step!r}"
    return "before the first step"


def _function(name: str) -> str:
    if name == "<module>":
        return "the plan's top level"
    return name[:_MAX_FUNCTION]


class LogBuffer:
    """``print`` output of one step body or one stretch of plan code, capped."""

    __slots__ = ("chars", "dropped", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.chars = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        room = MAX_LOG_CHARS - self.chars
        if room <= 0:
            self.dropped += len(text)
            return
        kept = text[:room]
        self.parts.append(kept)
        self.chars += len(kept)
        self.dropped += len(text) - len(kept)

    def take(self) -> list[str]:
        """The lines written so far (then empty again)."""
        text = "".join(self.parts)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) > MAX_LOG_LINES:
            self.dropped += sum(len(x) + 1 for x in lines[MAX_LOG_LINES:])
            lines = lines[:MAX_LOG_LINES]
        if self.dropped:
            lines.append(f"[log truncated: {self.dropped:,} more characters]")
        self.parts, self.chars, self.dropped = [], 0, 0
        return lines


def read_logs(value: object) -> list[str]:
    """Log lines a worker sent, checked and capped (anything malformed is dropped)."""
    if not isinstance(value, list):
        return []
    lines: list[str] = []
    total = 0
    for line in value[:MAX_LOG_LINES + 1]:
        if not isinstance(line, str):
            continue
        line = line[:MAX_LOG_CHARS - total]
        total += len(line)
        lines.append(line)
        if total >= MAX_LOG_CHARS:
            break
    return lines


def read_where(value: object) -> dict[str, Any] | None:
    """A location a worker sent, checked and capped, or None."""
    if not isinstance(value, dict):
        return None
    frames = value.get("traceback")
    if not isinstance(frames, list):
        return None
    clean = [f for f in (_frame(f) for f in frames[-MAX_TRACE_FRAMES:]) if f is not None]
    if not clean:
        return None
    return {**clean[-1], "traceback": clean}


def _frame(value: object) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    line, function, text = value.get("line"), value.get("function"), value.get("source")
    if (type(line) is not int or not 0 < line < 10**7 or not isinstance(function, str)
            or not isinstance(text, str)):
        return None
    return {"line": line, "function": function[:_MAX_FUNCTION], "source": text[:_MAX_SOURCE]}
