"""``env.tools``: call Python functions the host registered by name, so an agent
framework can hand its own tools to plans."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from agentflow.capabilities._base import Capability, CapabilityContext, CapabilityError


class ToolsCapability(Capability):
    """``call(name, *args, **kwargs)`` and ``list()``. Arguments and results cross as JSON.

    Args:
        functions: name -> function (sync or async). Only these can be called.
    """

    name = "tools"
    methods = frozenset({"call", "list"})

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        for name, fn in functions.items():
            if not callable(fn):
                raise TypeError(f"tool {name!r} is not callable")
        self.functions = dict(functions)

    async def do_call(self, ctx: CapabilityContext, name: str, /, *args: Any, **kwargs: Any
                      ) -> Any:
        # Positional-only: a tool may take keyword arguments called `name` or `ctx`.
        fn = self.functions.get(name) if isinstance(name, str) else None
        if fn is None:
            raise CapabilityError(f"no tool named {name!r}; tools: {sorted(self.functions)}")
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
            result = await fn(*args, **kwargs)
        else:  # a sync tool runs in a thread: it must not stall every other run
            result = await asyncio.to_thread(fn, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            raise CapabilityError(f"tool {name!r} returned a value that is not JSON: {exc}"
                                  ) from None

    async def do_list(self, ctx: CapabilityContext) -> list[dict[str, str]]:
        return [{"name": n, "doc": (inspect.getdoc(f) or "").split("\n")[0]}
                for n, f in sorted(self.functions.items())]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tools": sorted(self.functions)}
