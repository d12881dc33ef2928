"""The capability interface."""

from __future__ import annotations

import asyncio
import inspect
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
        fn = getattr(self, f"do_{method}")
        try:  # say what the plan called wrongly, in its own terms (not do_x's)
            inspect.signature(fn).bind(context, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.signature_of(method)}: {exc}") from None
        try:
            return await fn(context, *args, **kwargs)
        except (asyncio.CancelledError, GeneratorExit) as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task is not None and (
                    task.cancelling()):
                raise  # the run itself is being cancelled
            # Raised by the facade's own code (a tool, a client): a failure of this call,
            # not a signal to the engine, which would abandon the run and run it again.
            raise CapabilityError(f"env.{self.name}.{method} failed: it raised "
                                  f"{type(exc).__name__}") from None

    def signature_of(self, method: str) -> str:
        """How a plan calls ``method``: ``env.kv.get(key, default=None)``."""
        fn = getattr(self, f"do_{method}", None)
        if fn is None:
            return f"env.{self.name}.{method}(...)"
        params = list(inspect.signature(fn).parameters.values())[1:]  # not the context
        text = ", ".join(str(p.replace(annotation=inspect.Parameter.empty)) for p in params)
        return f"env.{self.name}.{method}({text})"

    def describe(self) -> dict[str, Any]:
        """What the grant allows, safe to show to a model (never secrets): its methods,
        and for each how a plan calls it and what it does (the method's docstring)."""
        calls = {}
        for method in sorted(self.methods):
            doc = inspect.getdoc(getattr(self, f"do_{method}", None)) or ""
            calls[method] = {"call": self.signature_of(method)}
            if doc:
                calls[method]["does"] = doc.split("\n\n")[0].replace("\n", " ")
        return {"name": self.name, "methods": sorted(self.methods), "calls": calls}
