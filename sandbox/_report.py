"""The validator's result types: `Diagnostic` and `ValidationReport`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox._codes import DIAGNOSTIC_CODES

__all__ = ["Diagnostic", "ValidationReport", "diagnostic"]


@dataclass(frozen=True)
class Diagnostic:
    """One finding of `validate`.

    Attributes:
        line: 1-based line of the offending construct (1 when it has none).
        col: 1-based column, in characters.
        code: a stable code from `DIAGNOSTIC_CODES`, e.g. ``"AF401"``.
        message: what is wrong, naming the construct.
        hint: how to fix it.
    """

    line: int
    col: int
    code: str
    message: str
    hint: str


@dataclass
class ValidationReport:
    """The result of `validate`: ``ok`` is true when there is no diagnostic."""

    ok: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)


def diagnostic(code: str, message: str, *, line: int = 1, col: int = 1,
               hint: str | None = None) -> Diagnostic:
    """Build a `Diagnostic`, taking the hint from the code table unless one is given."""
    return Diagnostic(line=max(1, line), col=max(1, col), code=code, message=message,
                      hint=hint if hint is not None else DIAGNOSTIC_CODES[code][1])
