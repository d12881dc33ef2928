"""Shared helpers for the sandbox tests: a recording `PlanHost`, events, plan sources."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any


def make_event(payload: Any = None, instance_id: str = "inst-1") -> dict[str, Any]:
    return {"payload": payload, "timestamp": "2026-03-04T05:06:07+00:00",
            "instance_id": instance_id}


class Suspend(BaseException):
    """Stands in for the engine's suspension signal: a BaseException, not an Exception."""


class RecordingHost:
    """A `PlanHost` that records every call and answers like a simple engine.

    ``do`` runs the body once (or ``retries + 1`` times on RemoteError); ``now``,
    ``random`` and ``uuid`` return fixed values; ``fail`` maps op or step name to an
    exception to raise; ``suspend`` is a set of step names whose call raises `Suspend`.
    """

    def __init__(self, *, fail: dict[str, BaseException] | None = None,
                 suspend: set[str] | None = None, retries: int = 0,
                 capability: Callable[[str, str, list[Any], dict[str, Any]],
                                      Awaitable[Any]] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.body_errors: list[BaseException] = []
        self.capability_calls: list[tuple[str, str, list[Any], dict[str, Any]]] = []
        self.fail = fail or {}
        self.suspend = suspend or set()
        self.retries = retries
        self._capability = capability
        self.first_step_at: float | None = None

    async def step(self, op: str, args: dict[str, Any],
                   run_body: Callable[[], Awaitable[Any]] | None) -> Any:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        self.calls.append((op, args))
        name = args.get("name")
        if name in self.suspend:
            raise Suspend(name)
        error = self.fail.get(str(name)) or self.fail.get(op)
        if error is not None:
            raise error
        if op == "do":
            assert run_body is not None
            for attempt in range(self.retries + 1):
                try:
                    return await run_body()
                except Exception as exc:
                    self.body_errors.append(exc)
                    if attempt == self.retries:
                        raise
        if op == "now":
            return datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
        if op == "random":
            return 0.25
        if op == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        return None

    async def capability(self, name: str, method: str, args: list[Any],
                         kwargs: dict[str, Any]) -> Any:
        self.capability_calls.append((name, method, args, kwargs))
        if self._capability is not None:
            return await self._capability(name, method, args, kwargs)
        return {"capability": name, "method": method, "args": args, "kwargs": kwargs}


async def wait_until(predicate: Callable[[], Any], *, timeout: float = 10.0,
                     what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


def plan(body: str, *, helpers: str = "") -> str:
    """Source of a plan whose ``run`` has ``body`` (indented by 4)."""
    lines = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"{helpers}\nasync def run(event, step):\n{lines}\n"

