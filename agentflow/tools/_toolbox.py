"""What the model-API adapters share: a chosen set of tools, run for one agent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentflow.errors import InvalidArgumentError
from agentflow.plans import Agent
from agentflow.tools._context import ToolContext
from agentflow.tools._registry import TOOLS, ToolOutcome, ToolSpec, call_tool
from agentflow.tools._sync import as_agent, run_sync

if TYPE_CHECKING:
    from agentflow.plans._sync import SyncAgent

__all__ = ["AUTHORING_TOOLS", "ToolAdapter", "Toolbox", "field", "input_schema",
           "is_async_sdk_client", "result_content", "sdk_of", "specs_named"]

#: The tools an authoring loop offers by default: write, check, store, start, look.
AUTHORING_TOOLS = ("validate_plan", "submit_plan", "list_plans", "start_instance",
                   "get_instance")


def specs_named(tools: Iterable[str] | None) -> list[ToolSpec[Any, Any]]:
    """The specs of ``tools`` (default: all), in order.

    Raises:
        InvalidArgumentError: a name that is not a tool (a ValueError).
    """
    names = list(TOOLS) if tools is None else list(dict.fromkeys(tools))
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise InvalidArgumentError(f"unknown tools {unknown}; the tools are {list(TOOLS)}")
    return [TOOLS[n] for n in names]


def input_schema(spec: ToolSpec[Any, Any]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, as every model API takes it."""
    schema: dict[str, Any] = spec.args_model.model_json_schema()
    schema.pop("title", None)
    return schema


def result_content(outcome: ToolOutcome) -> str:
    """The text a model gets back: the structured result as JSON (its ``summary`` first),
    or ``Error: ...``."""
    if outcome.result is None:
        return outcome.text
    return outcome.result.model_dump_json(exclude_none=True)


def field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` for SDK objects."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)



def sdk_of(client: Any) -> str | None:
    """``"openai"`` or ``"anthropic"`` when the client's class (or a base, for a user's
    subclass) comes from that SDK; None otherwise. Imports neither."""
    for cls in type(client).__mro__:
        root = cls.__module__.split(".")[0]
        if root in ("openai", "anthropic"):
            return root
    return None


def is_async_sdk_client(client: Any) -> bool:
    """Whether ``client`` is an ``openai.AsyncOpenAI`` or ``anthropic.AsyncAnthropic``
    (or a subclass). The SDKs wrap their ``create`` methods, so the class decides; it is
    recognised by name, so that no SDK is imported outside its adapter."""
    return any(cls.__name__ in ("AsyncOpenAI", "AsyncAnthropic")
               and cls.__module__.split(".")[0] in ("openai", "anthropic")
               for cls in type(client).__mro__)

class Toolbox:
    """Some of `TOOLS`, run for one agent under one `ToolContext`.

    Args:
        agent: whose plans and instances the tools act on.
        tools: the tool names to offer (default: all of them).
        context: the operator's rules; the default refuses ``approval`` in
            ``send_event`` and has no person to ask, so ``approve`` leaves the instance
            waiting and says how a person answers.
    """

    def __init__(self, agent: Agent | SyncAgent, *, tools: Iterable[str] | None = None,
                 context: ToolContext | None = None) -> None:
        self.agent = as_agent(agent)
        self.specs = specs_named(tools)
        self.context = context or ToolContext()

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    async def run(self, name: str, arguments: Mapping[str, Any] | str | None) -> ToolOutcome:
        """Run one call; a tool not offered is an error result like any bad input.

        Called on another event loop than the AgentFlow's (a framework that runs its
        own), the call is carried over to the AgentFlow's loop.
        """
        if name not in self.names:
            return ToolOutcome(name, error=f"tool {name!r} is not offered here; use one of "
                                           f"{', '.join(self.names)}")
        call = call_tool(self.agent, name, arguments, self.context)
        home = self.agent.flow.loop
        if home is None or home is asyncio.get_running_loop() or home.is_closed():
            return await call
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, home))

    def run_sync(self, name: str, arguments: Mapping[str, Any] | str | None) -> ToolOutcome:
        return run_sync(self.agent, self.run(name, arguments))



class ToolAdapter:
    """The base of the per-API adapters (`agentflow.tools.openai.OpenAITools`,
    `agentflow.tools.anthropic.AnthropicTools`): one agent's toolbox.

    Args:
        agent: whose plans and instances the tools act on.
        tools: the tool names to offer (default: all).
        context: the operator's rules (human-only event types; a way to ask a person,
            if the host has one).
    """

    def __init__(self, agent: Agent | SyncAgent, *, tools: Iterable[str] | None = None,
                 context: ToolContext | None = None) -> None:
        self.toolbox = Toolbox(agent, tools=tools, context=context)

def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as JSON text, whatever shape they came in."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {})
