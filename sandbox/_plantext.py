"""The text of host objects as plan code sees it: no heap addresses, no module paths.

A plan must not learn the host's module layout or heap addresses (they help an attacker
aim at the interpreter) from ``repr(step)``, ``f"{gather}"``, ``str(helper)`` or
``"%s" % print``. The plan-facing objects have their own reprs; helpers and builtin
methods are wrapped (``sandbox._namespace``); and ``repr``, ``str``, f-strings, ``%``
formatting and ``print`` scrub whatever text is left (`scrub`).
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from typing import Any

__all__ = ["PlanStr", "format_value", "plan_mod", "plan_repr", "plan_str", "scrub"]

_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
_DOTTED = re.compile(r"(?<=[<'])((?:[A-Za-z_][A-Za-z0-9_]*\.)+)(?=[A-Za-z_][A-Za-z0-9_]*[ '>])")
_PLAIN_TEXT_TYPES: tuple[type, ...] = (str, int, float, bool, type(None), complex,
                                        datetime, timedelta)


def scrub(text: str) -> str:
    """``text`` without heap addresses and module paths (``<a.b.C object at 0x1>`` ->
    ``<C object>``)."""
    return _DOTTED.sub(_drop_module, _ADDRESS.sub("", text))


def _drop_module(match: re.Match[str]) -> str:
    dotted = match.group(1)
    # Only a loaded module's path is dropped: a plan's own text ("<a.b c>") stays.
    parts = dotted.rstrip(".").split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in sys.modules:
            return ""
    return dotted


def plan_repr(value: Any) -> str:
    """``repr`` for plan code: the builtin's text, scrubbed of addresses and paths."""
    text = repr(value)
    return text if type(value) in _PLAIN_TEXT_TYPES else scrub(text)


def format_value(value: Any, spec: str = "", conversion: int = -1) -> str:
    """``f"{value!conversion:spec}"`` for plan code (the policy rewrites every
    replacement field to a call of this).

    datetime's C formatting imports `time` through the running frame's builtins, which
    in a plan have no ``__import__``; called from here, it finds this module's. Text of
    values that are not plain data is scrubbed (`scrub`).
    """
    if conversion == ord("r"):
        value = plan_repr(value)
    elif conversion == ord("a"):
        value = scrub(ascii(value))
    elif conversion == ord("s"):
        value = str(value)
    text = format(value, spec)
    return text if type(value) in _PLAIN_TEXT_TYPES else scrub(text)


def plan_str(value: Any) -> str:
    """``str(value)`` for plan code: the builtin's text, scrubbed unless plain data."""
    text = str(value)
    return text if type(value) in _PLAIN_TEXT_TYPES else scrub(text)


class _PlanStrType(type):
    """Makes `PlanStr` stand for ``str`` in ``isinstance`` and ``issubclass``."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, str)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, str)

    def __repr__(cls) -> str:
        return "<class 'str'>"


class PlanStr(metaclass=_PlanStrType):
    """``str`` as plan code sees it: ``str(helper)``, ``str(StepError)`` or
    ``str(print)`` would give the builtin's text, with heap addresses and host module
    paths; this scrubs them (like ``repr`` and f-strings), and is ``str`` otherwise
    (``isinstance(x, str)``, ``str.maketrans``, ``str(b, "utf-8")``). Returns real
    ``str`` objects."""

    def __new__(cls, *args: Any, **kwargs: Any) -> str:  # type: ignore[misc]
        if len(args) == 1 and not kwargs:
            return plan_str(args[0])
        return str(*args, **kwargs)


class _ScrubbedText:
    """A value that is not plain data, as ``%`` formatting shows it: scrubbed."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return plan_str(self._value)

    def __repr__(self) -> str:
        return plan_repr(self._value)


def _scrubbed(value: Any) -> Any:
    return value if type(value) in _PLAIN_TEXT_TYPES else _ScrubbedText(value)


def plan_mod(left: Any, right: Any) -> Any:
    """``left % right`` for plan code (the policy rewrites ``%`` to a call of this):
    printf-style formatting of a str shows objects that are not plain data scrubbed,
    as ``str`` and ``repr`` do; numbers are left to ``%``."""
    if isinstance(left, str):
        if type(right) is tuple:
            right = tuple(_scrubbed(v) for v in right)
        elif type(right) is dict:
            right = {k: _scrubbed(v) for k, v in right.items()}
        else:
            right = _scrubbed(right)
    return left % right
