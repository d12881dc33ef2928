"""What plan code can reach: safe builtins, the guards RestrictedPython calls, helpers.

Rules (SANDBOX.md):

- No stdlib module is ever placed in the namespace: attribute chains without
  underscores reach `os`/`sys`/`builtins` from json, re, datetime, typing, asyncio and
  others, and `operator.attrgetter` bypasses the guards outright. Plans get
  hand-written functions instead (`gather`, `json_dumps`, `json_loads`).
- No `__import__`, no `utility_builtins`, no `getattr`/`setattr`/`type`/`vars`/`dir`.
- `_getattr_` is an allowlist, stricter than RestrictedPython's `safer_getattr`: an
  attribute is readable only on the plain data types (str, int, list, dict, ...), on
  `datetime`/`timedelta` values, on exceptions (`args`, plus `error_name`/`message`),
  and on the plan's own stubs (`event`, `step`, `env`). Everything else (functions,
  coroutines, iterators, methods, classes) has no readable attribute at all, so
  ``coro.send``, ``fut.get_loop()``, ``err.obj`` (CVE-2024-47532) and
  ``str.format`` traversals are closed whatever their spelling.
- Writes go through RestrictedPython's `full_write_guard`: only dicts and lists (the
  plan's own data) can be mutated.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import operator
import types
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
)
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox._plantext import PlanStr, format_value, plan_mod, plan_repr, plan_str

__all__ = [
    "LOG_SINK",
    "PLAN_EXCEPTIONS",
    "PLAN_GLOBAL_NAMES",
    "NonRetryableError",
    "StepError",
    "WorkflowTimeoutError",
    "guarded_getattr",
    "plan_globals",
    "register_plan_type",
]


# --- exceptions plan code can raise and catch ---------------------------------------

class NonRetryableError(Exception):
    """Raise it in a step body to fail the step at once, without retries."""


class WorkflowTimeoutError(TimeoutError):
    """A step attempt or an event wait ran out of time."""


class StepError(Exception):
    """A step failed with an error of a class the plan cannot name.

    Attributes:
        error_name: the class name of the original error.
        message: its message.
    """

    def __init__(self, message: str = "", *, error_name: str = "StepError") -> None:
        super().__init__(message)
        self.error_name = error_name
        self.message = message


_BUILTIN_EXCEPTIONS: tuple[type[Exception], ...] = (
    Exception, ArithmeticError, AssertionError, AttributeError, ConnectionError,
    IndexError, KeyError, LookupError, MemoryError, NameError, NotImplementedError,
    OSError, OverflowError, PermissionError, RecursionError, RuntimeError, TimeoutError,
    TypeError,
    UnicodeError, ValueError, ZeroDivisionError,
)

#: Every exception class plan code can name, by name. An error crossing the boundary
#: with one of these names is rebuilt as that class; any other becomes `StepError`.
PLAN_EXCEPTIONS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (*_BUILTIN_EXCEPTIONS, NonRetryableError,
                                  WorkflowTimeoutError, StepError)
}


# --- attribute allowlist -------------------------------------------------------------

_DATA_TYPES: tuple[type, ...] = (str, bytes, int, float, complex, bool, list, dict, set,
                                 frozenset, tuple, range, slice)
_UNSAFE_ATTRS = frozenset({"format", "format_map"})


def _public(cls: type) -> frozenset[str]:
    return frozenset(n for n in dir(cls) if not n.startswith("_")) - _UNSAFE_ATTRS


_ATTRS: dict[type, frozenset[str] | Callable[[Any, str], Any]] = {
    cls: _public(cls) for cls in _DATA_TYPES}
_DATETIME_ATTRS = frozenset({"year", "month", "day", "hour", "minute", "second",
                             "microsecond", "isoformat", "timestamp", "weekday",
                             "isoweekday", "strftime", "replace"})


# --- text of host objects: see sandbox._plantext ---------------------------------

class _PlanCallable:
    """A host callable as plan code sees it: callable, with a repr that names it and
    nothing else (no module, no address)."""

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        self._fn = fn
        self._label = label

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return self._label


_BUILTIN_METHOD_TYPES: tuple[type, ...] = (types.BuiltinMethodType, types.MethodWrapperType,
                                           types.MethodDescriptorType,
                                           types.ClassMethodDescriptorType)


def _wrap_method(owner: Any, name: str, value: Any) -> Any:
    if not (isinstance(value, _BUILTIN_METHOD_TYPES) and callable(value)):
        return value
    kind = owner.__name__ if isinstance(owner, type) else type(owner).__name__
    return _PlanCallable(value, f"<built-in method {kind}.{name}>")


def _datetime_attr(obj: datetime, name: str) -> Any:
    if name not in _DATETIME_ATTRS:
        raise AttributeError(f"'datetime' object has no attribute {name!r} available in "
                             f"plans")
    if name == "strftime":  # the same import as in format_value: call it from here
        def strftime(fmt: str) -> str:
            return obj.strftime(fmt)
        return strftime
    return getattr(obj, name)


_ATTRS[datetime] = _datetime_attr
_ATTRS[timedelta] = frozenset({"days", "seconds", "microseconds", "total_seconds"})
_EXCEPTION_ATTRS = frozenset({"args"})
_STEP_ERROR_ATTRS = frozenset({"args", "error_name", "message"})


def register_plan_type(cls: type, attrs: frozenset[str] | Callable[[Any, str], Any]) -> None:
    """Make ``attrs`` readable on instances of ``cls`` (a stub class of the runtime).

    ``attrs`` is a set of names, or a function ``(obj, name) -> value`` for stubs with
    open-ended attributes (capability facades).
    """
    _ATTRS[cls] = attrs


def guarded_getattr(obj: Any, name: str) -> Any:
    """RestrictedPython's ``_getattr_``: ``obj.name`` for plan code, by allowlist."""
    if type(name) is not str:
        raise TypeError("attribute name must be a str")
    if name.startswith("_") or name in INSPECT_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not accessible in plans")
    if obj is PlanStr:
        obj = str  # str.maketrans and friends
    cls = type(obj)
    allowed = _ATTRS.get(cls)
    if allowed is None and cls is type and obj in _DATA_TYPES:
        allowed = _ATTRS[obj]  # e.g. dict.fromkeys, str.maketrans, int.from_bytes
    if allowed is None and isinstance(obj, BaseException):
        allowed = _STEP_ERROR_ATTRS if isinstance(obj, StepError) else _EXCEPTION_ATTRS
    if callable(allowed):
        return allowed(obj, name)
    if allowed is None or name not in allowed:
        if name in _UNSAFE_ATTRS and isinstance(obj, str | type):
            raise AttributeError(f"str.{name}() is not available in plans: use an f-string")
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r} "
                             f"available in plans")
    return _wrap_method(obj, name, getattr(obj, name))


# --- the other guards RestrictedPython's generated code calls --------------------------

def guarded_getitem(obj: Any, key: Any) -> Any:
    return obj[key]


def guarded_getiter(obj: Any) -> Any:
    return obj


def guarded_apply(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul,
    "/=": operator.itruediv, "//=": operator.ifloordiv, "%=": lambda a, b: plan_mod(a, b),
    "**=": operator.ipow, "<<=": operator.ilshift, ">>=": operator.irshift,
    "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand, "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    fn = _INPLACE.get(op)
    if fn is None:
        raise TypeError(f"operator {op!r} is not supported")
    return fn(target, value)


# --- print: the plan's log ----------------------------------------------------------

#: Where ``print`` in plan code writes: set by the runtime per run and per step body.
LOG_SINK: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "sandbox_log_sink", default=None)


class PlanPrinter:
    """What RestrictedPython's ``_print_`` makes: ``print(...)`` in plan code lands here.

    The text goes to the current `LOG_SINK` (the step body's, or the run's), which
    keeps it capped and sends it to the host with the step it belongs to. ``file=`` is
    refused: there is nothing else to write to.
    """

    __slots__ = ()

    def __init__(self, _getattr_: object = None) -> None:
        pass

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n",
                    file: Any = None, flush: bool = False) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available in plans: print writes to "
                            "the plan's log")
        if not isinstance(sep, str | None) or not isinstance(end, str | None):
            raise TypeError("print(): sep and end must be str or None")
        text = (" " if sep is None else sep).join(plan_str(o) for o in objects)
        sink = LOG_SINK.get()
        if sink is not None:
            sink(text + ("\n" if end is None else end))

    def __call__(self) -> str:
        raise NameError("`printed` is not available in plans")


# --- hand-written helpers (instead of modules) --------------------------------------

async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await several step calls at once and return their results in order.

    When one fails, its error is raised once all the others have ended: unlike
    `asyncio.gather`, which leaves them running, no plan code outlives the ``await``
    (an orphaned coroutine could compute on after its run ended).
    """
    wrong = [a for a in awaitables if not inspect.isawaitable(a)]
    if wrong:
        for awaitable in awaitables:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: no "never awaited" warning
        raise TypeError(f"gather() takes awaitables, such as step calls, not "
                        f"{type(wrong[0]).__name__}")
    futures = [asyncio.ensure_future(a) for a in awaitables]
    await asyncio.gather(*futures, return_exceptions=True)
    return [future.result() for future in futures]


def json_dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Encode a JSON value as text."""
    if indent is not None and (type(indent) is not int or not 0 <= indent <= 8):
        raise ValueError("indent must be an int from 0 to 8")
    return json.dumps(value, indent=indent, sort_keys=bool(sort_keys), ensure_ascii=False,
                      allow_nan=False)


def json_loads(text: str) -> Any:
    """Decode JSON text."""
    if not isinstance(text, str):
        raise TypeError("json_loads expects a str")
    return json.loads(text)


_SAFE_CALLABLES: tuple[Callable[..., Any], ...] = (
    abs, all, any, bool, callable, chr, dict, divmod, enumerate, filter, float,
    frozenset, hex, bin, int, isinstance, issubclass, len, list, map, max, min, oct, ord,
    pow, range, reversed, round, set, slice, sorted, str, sum, tuple, zip,
)

_SAFE_BUILTINS: dict[str, Any] = {fn.__name__: fn for fn in _SAFE_CALLABLES}
_SAFE_BUILTINS["str"] = PlanStr
_SAFE_BUILTINS.update({"None": None, "True": True, "False": False})
_SAFE_BUILTINS.update(PLAN_EXCEPTIONS)
_SAFE_BUILTINS.update({name: _PlanCallable(fn, f"<built-in function {name}>") for name, fn in
                       (("gather", gather), ("json_dumps", json_dumps),
                        ("json_loads", json_loads), ("repr", plan_repr))})

_GUARDS: dict[str, Any] = {
    "_getattr_": guarded_getattr,
    "_getitem_": guarded_getitem,
    "_getiter_": guarded_getiter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,
    "_inplacevar_": guarded_inplacevar,
    "_apply_": guarded_apply,
    "_format_": format_value,
    "_mod_": plan_mod,
    "_print_": PlanPrinter,
}

#: Every global name a plan can use besides its own definitions and parameters.
PLAN_GLOBAL_NAMES: frozenset[str] = frozenset(_SAFE_BUILTINS) | {"env", "print"}


def plan_globals(env: object) -> dict[str, Any]:
    """A fresh module namespace for one run of a plan, with ``env`` bound."""
    namespace: dict[str, Any] = {"__builtins__": dict(_SAFE_BUILTINS), "__name__": "plan",
                                 "env": env}
    namespace.update(_GUARDS)
    return namespace


def safe_builtin_names() -> Iterable[str]:
    """The builtin names plans can use, sorted (for docs and prompts)."""
    return sorted(_SAFE_BUILTINS)
