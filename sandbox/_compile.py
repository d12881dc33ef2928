"""Layers 1 and 2 together: `validate` and `compile_plan`.

`validate` runs the same pipeline as `compile_plan` (static checks, then
RestrictedPython, then CPython's compiler) and reports instead of raising, so a plan
that validates is a plan that compiles. `compile_plan` hands the tree that the static
checks walked, the same object, to RestrictedPython, which rewrites it in place, and
compiles that.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import warnings
from dataclasses import dataclass
from types import CodeType

from RestrictedPython.compile import compile_restricted_exec

from sandbox._errors import PlanValidationError
from sandbox._policy import PlanPolicy
from sandbox._report import Diagnostic, ValidationReport, diagnostic
from sandbox._stepcheck import Grants
from sandbox._validate import check_source

__all__ = ["CompiledPlan", "compile_plan", "validate"]

_RP_LINE = re.compile(r"^Line (\d+): (.*)$", re.S)


@dataclass(frozen=True)
class CompiledPlan:
    """A validated plan, compiled by RestrictedPython.

    Attributes:
        source: the plan's source text (what a worker receives and compiles itself).
        sha256: hex SHA-256 of ``source`` encoded as UTF-8.
        code: the restricted code object of the module.
        filename: the name used in tracebacks.
    """

    source: str
    sha256: str
    code: CodeType
    filename: str = "<plan>"


def validate(source: str, *, capabilities: Grants | None = None) -> ValidationReport:
    """Check plan source statically, without running it. Never raises.

    Runs every layer-1 check (size and nesting limits, module shape, awaited and
    literally named step calls, forbidden constructs and names, exception handling) and
    then RestrictedPython's own checks, so ``validate(s).ok`` means ``compile_plan(s)``
    succeeds.

    Args:
        source: the plan's Python source.
        capabilities: what the agent was granted, as capability name -> its method
            names (None: any method). When given, ``env.<name>`` for a capability not
            granted, or a method it does not have, is reported (AF409) with what is
            granted. When None (the default), ``env`` is not checked.

    Returns:
        A `ValidationReport`; ``ok`` is true when ``diagnostics`` is empty. Each
        `Diagnostic` has a line, a column, a stable code (see `DIAGNOSTIC_CODES`) and a
        hint.

    Example:
        >>> validate("async def run(event, step):\\n    return 1\\n").ok
        True
    """
    diagnostics, _code = _analyse(source, "<plan>")
    if capabilities is not None and isinstance(source, str):
        try:  # the grant check is a second walk: compile_plan never depends on it
            granted, _tree = check_source(source, "<plan>", capabilities)
        except Exception as exc:
            granted = [diagnostic("AF000", f"{type(exc).__name__}: {exc}")]
        seen = set(diagnostics)
        diagnostics = sorted([*diagnostics, *(d for d in granted if d.code == "AF409"
                                              and d not in seen)],
                             key=lambda d: (d.line, d.col))
    return ValidationReport(ok=not diagnostics, diagnostics=diagnostics)


def compile_plan(source: str, *, filename: str = "<plan>") -> CompiledPlan:
    """Validate plan source and compile it with the restricted async policy.

    Args:
        source: the plan's Python source.
        filename: the name shown in tracebacks.

    Returns:
        A `CompiledPlan`. Results are cached by source and filename.

    Raises:
        PlanValidationError: the source is invalid; ``.report`` lists every finding.
    """
    return _compile_cached(source, filename)


@functools.lru_cache(maxsize=256)
def _compile_cached(source: str, filename: str) -> CompiledPlan:
    diagnostics, code = _analyse(source, filename)
    if diagnostics or code is None:
        raise PlanValidationError(ValidationReport(ok=False, diagnostics=diagnostics or [
            diagnostic("AF000", "compilation produced no code")]))
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return CompiledPlan(source=source, sha256=digest, code=code, filename=filename)


def _analyse(source: object, filename: str) -> tuple[list[Diagnostic], CodeType | None]:
    try:
        diagnostics, tree = check_source(source, filename)
        if diagnostics or tree is None:
            return diagnostics, None
        return _restricted_compile(tree, filename)
    except Exception as exc:  # validate() never raises: report our own bugs instead
        return [diagnostic("AF000", f"{type(exc).__name__}: {exc}")], None


def _restricted_compile(tree: ast.Module, filename: str
                        ) -> tuple[list[Diagnostic], CodeType | None]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = compile_restricted_exec(tree, filename=filename, policy=PlanPolicy)
    except SyntaxError as exc:  # raised by CPython's compiler, e.g. 'break' outside loop
        return [diagnostic("AF003", str(exc.msg), line=exc.lineno or 1,
                           col=exc.offset or 1)], None
    except (RecursionError, MemoryError):
        return [diagnostic("AF004", "the plan nests too deeply to compile")], None
    if result.errors:
        found = []
        for error in result.errors:
            match = _RP_LINE.match(error)
            line = int(match.group(1)) if match else 1
            found.append(diagnostic("AF006", match.group(2) if match else error, line=line))
        return found, None
    return [], result.code
