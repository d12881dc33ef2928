"""agentflow's agent API as a pydantic-ai toolset.

A pydantic-ai agent gets the same tools as an MCP client, with the same argument
schemas, handlers and rules (``approval`` events come only from a person). A failed
call (bad arguments, an unknown id, an invalid plan submitted) reaches the model as a
failed tool result (`pydantic_ai.ToolFailed`), so it can adapt; a rejected plan is not a
failure: its result carries the diagnostics to fix.

Needs ``pip install agentflow[pydantic-ai]``.

Example:
    from pydantic_ai import Agent as PydanticAgent
    from agentflow.tools.pydantic_ai import agentflow_toolset

    async with AgentFlow("sqlite:///agentflow.db") as af:
        writer = PydanticAgent("openai:gpt-4.1", instructions=load_prompt("plan-authoring"),
                               toolsets=[agentflow_toolset(af.agent("writer"))])
        result = await writer.run("Write and start a plan that ...")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from pydantic_ai import FunctionToolset, Tool, ToolFailed
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("agentflow.tools.pydantic_ai needs pydantic-ai: "
                      "pip install 'agentflow[pydantic-ai]'") from exc

from agentflow.plans import Agent
from agentflow.tools._context import ToolContext
from agentflow.tools._registry import ToolSpec
from agentflow.tools._toolbox import Toolbox, input_schema

__all__ = ["agentflow_toolset"]


def agentflow_toolset(agent: Agent, *, tools: Iterable[str] | None = None,
                      context: ToolContext | None = None,
                      id: str = "agentflow") -> FunctionToolset[Any]:
    """The agent API, for one agent, as a pydantic-ai ``FunctionToolset``.

    Args:
        agent: whose plans and instances the tools act on (its AgentFlow must be
            started; calls are carried to its event loop if the framework runs another).
        tools: the tool names to offer (default: all).
        context: the operator's rules (human-only event types; a way to ask a person).
        id: the toolset's id within the pydantic-ai agent.
    """
    toolbox = Toolbox(agent, tools=tools, context=context)
    return FunctionToolset([_tool(toolbox, spec) for spec in toolbox.specs], id=id)


def _tool(toolbox: Toolbox, spec: ToolSpec[Any, Any]) -> Tool[Any]:
    async def call(**arguments: Any) -> dict[str, Any]:
        outcome = await toolbox.run(spec.name, arguments)
        if outcome.result is None:
            raise ToolFailed(outcome.error or "the call failed")
        result: dict[str, Any] = outcome.result.model_dump(mode="json", exclude_none=True)
        return result

    call.__name__ = spec.name
    return Tool.from_schema(call, name=spec.name, description=spec.description,
                            json_schema=input_schema(spec))
