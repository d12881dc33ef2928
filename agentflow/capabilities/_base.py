"""The capability interface."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentflow.errors import CapabilityError

if TYPE_CHECKING:
    from agentflow._limits import Quotas
    from agentflow.store import Store

__all__ = ["Capability", "CapabilityContext", "CapabilityError"]


@dataclass(frozen=True)
class CapabilityContext:
    """Who is calling: the host passes it with every call."""

    agent_id: str
    instance_id: str
    store: Store
    now: float
    quotas: Quotas | None = None  # the operator's quotas (kv bytes and keys ...)


class Capability:
    """A facade the host grants. ``methods`` lists what a plan may call."""

    name: str = ""
    methods: frozenset[str] = frozenset()

    async def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
                   context: CapabilityContext) -> Any:
        if method not in self.methods:
            raise CapabilityError(f"env.{self.name} has no method {method!r}; it has "
                                  f"{sorted(self.methods)}")
        try:
            return await getattr(self, f"do_{method}")(context, *args, **kwargs)
        except (asyncio.CancelledError, GeneratorExit) as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and (
                    task.cancelling()):
                raise  # the run itself is being cancelled
            # Raised by the facade's own code (a tool, a client): a failure of this call,
            # not a signal to the engine, which would abandon the run and run it again.
            raise CapabilityError(f"env.{self.name}.{method} failed: it raised "
                                  f"{type(exc).__name__}") from None

    def describe(self) -> dict[str, Any]:
        """What the grant allows, safe to show to a model (never secrets)."""
        return {"name": self.name, "methods": sorted(self.methods)}
