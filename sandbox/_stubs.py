"""What plan code holds besides ``event`` (`sandbox._plan_values`): ``step`` and ``env``.

Every method of these stubs turns into a message to the host through the run that
owns it (`sandbox._runtime._Run`); see `sandbox._runtime` for the protocol side.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox._namespace import register_plan_type
from sandbox._plan_values import PlanEvent

if TYPE_CHECKING:
    from sandbox._runtime import _Run

__all__ = ["CapabilityMethod", "CapabilityStub", "PlanEnv", "PlanStep"]

# Set (to the run, and to the body's id) inside the task that executes a step body.
_BODY_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("sandbox_body",
                                                                        default=None)
_BODY_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("sandbox_body_id",
                                                                      default=None)


def _check_name(method: str, name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"step.{method}: the step name must be a str, got "
                        f"{type(name).__name__}")
    return name


class PlanStep:
    """``step`` inside a plan: each method asks the host and awaits its answer."""

    __slots__ = ("_run",)

    def __init__(self, run: _Run) -> None:
        self._run = run

    def __repr__(self) -> str:
        return "<step>"

    async def do(self, name: str, fn: Callable[[], Any], *, retries: Any = None,
                 timeout: Any = None) -> Any:
        if not callable(fn):
            raise TypeError(f"step.do({name!r}, fn): fn must be a zero-argument callable, "
                            f"e.g. `lambda: ...`")
        args = {"name": _check_name("do", name), "retries": retries, "timeout": timeout}
        return await self._run.step_call("do", args, fn)

    async def sleep(self, name: str, duration: Any) -> Any:
        args = {"name": _check_name("sleep", name), "duration": duration}
        return await self._run.step_call("sleep", args)

    async def sleep_until(self, name: str, when: Any) -> Any:
        args = {"name": _check_name("sleep_until", name), "when": when}
        return await self._run.step_call("sleep_until", args)

    async def wait_for_event(self, name: str, *, type: str,
                             timeout: Any = "24 hours", note: str | None = None) -> Any:
        args = {"name": _check_name("wait_for_event", name), "type": type,
                "timeout": timeout}
        if note is not None:  # sent only when given: the message stays as it was
            args["note"] = note
        return await self._run.step_call("wait_for_event", args)

    async def now(self) -> Any:
        return await self._run.step_call("now", {})

    async def random(self) -> Any:
        return await self._run.step_call("random", {})

    async def uuid(self) -> Any:
        return await self._run.step_call("uuid", {})


class CapabilityMethod:
    """``env.<capability>.<method>``: calling it returns an awaitable of the result."""

    __slots__ = ("_capability", "_method")

    def __init__(self, capability: CapabilityStub, method: str) -> None:
        self._capability = capability
        self._method = method

    def __repr__(self) -> str:
        return f"<env.{self._capability._name}.{self._method}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self._capability._name
        run = _BODY_RUN.get()
        if run is None or run is not self._capability._run:
            raise RuntimeError(
                f"env.{name}.{self._method}() can only be called inside a step body, "
                f"e.g. await step.do(\"call {name}\", lambda: env.{name}.{self._method}(...))")
        return run.capability_call(name, self._method, list(args), dict(kwargs),
                                   body=_BODY_ID.get())


class CapabilityStub:
    """``env.<capability>``: any public attribute is a method forwarded to the host."""

    __slots__ = ("_name", "_run")

    def __init__(self, run: _Run, name: str) -> None:
        self._run = run
        self._name = name

    def __repr__(self) -> str:
        return f"<env.{self._name}>"


class PlanEnv:
    """``env``: the capabilities granted to this agent, and nothing else."""

    __slots__ = ("_capabilities",)

    def __init__(self, run: _Run, names: list[str]) -> None:
        self._capabilities = {name: CapabilityStub(run, name) for name in names}

    def __repr__(self) -> str:
        return f"<env: {', '.join(sorted(self._capabilities)) or 'no capabilities'}>"


def _env_attribute(env: PlanEnv, name: str) -> CapabilityStub:
    stub = env._capabilities.get(name)
    if stub is None:
        granted = ", ".join(sorted(env._capabilities)) or "none"
        error = AttributeError(f"capability {name!r} was not granted to this agent "
                               f"(granted: {granted})")
        error._af_final = True  # type: ignore[attr-defined]  # no retry can grant it
        raise error
    return stub


register_plan_type(PlanEvent, frozenset({"payload", "timestamp", "instance_id"}))
register_plan_type(PlanStep, frozenset({"do", "sleep", "sleep_until", "wait_for_event",
                                        "now", "random", "uuid"}))
register_plan_type(PlanEnv, _env_attribute)
register_plan_type(CapabilityStub, CapabilityMethod)
