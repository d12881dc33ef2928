"""What the sandbox asks of its host: `PlanHost`, implemented by the agent layer and
served by `sandbox._driver.RunDriver` for each run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["PlanHost"]


class PlanHost(Protocol):
    """What the sandbox asks of its host (implemented by the agent layer).

    ``step`` receives ``op`` (``"do"``, ``"sleep"``, ``"sleep_until"``,
    ``"wait_for_event"``, ``"now"``, ``"random"``, ``"uuid"``) and ``args``:

    - do: ``{"name", "retries", "timeout"}``, with ``run_body``, an async callable
      that runs the step's ``fn`` in the sandbox and returns its JSON result or raises
      `RemoteError`; call it as many times as attempts are made, or never.
    - sleep: ``{"name", "duration"}``; sleep_until: ``{"name", "when"}`` (``when`` is a
      ``datetime`` or a number); wait_for_event: ``{"name", "type", "timeout", "note"}``;
      now/random/uuid: ``{}``.

    Its return value (JSON, or a ``datetime``) becomes the value of the plan's
    ``await``. An `Exception` it raises is raised in the plan under the same class
    name. A `BaseException` that is not an `Exception` abandons the run and leaves
    `WorkerPool.run_plan` as is. Values and names arriving here come from untrusted
    code: validate them as any user input.
    """

    async def step(self, op: str, args: dict[str, Any],
                   run_body: Callable[[], Awaitable[Any]] | None) -> Any: ...

    async def capability(self, name: str, method: str, args: list[Any],
                         kwargs: dict[str, Any]) -> Any: ...

    # Optional: ``log(lines)`` receives what the plan printed. It is called in the task
    # of the step call it belongs to: just before ``step`` for lines printed by plan
    # code since the previous step call, inside ``run_body`` for a body's lines, and
    # before the run ends for lines printed after the last step.
