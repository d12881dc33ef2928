"""agentflow's agent API as Anthropic Messages tools.

The definitions come from the same pydantic models as the MCP server's tools, and a
handler runs the ``tool_use`` blocks of a reply for one agent and returns the user
message of ``tool_result`` blocks to send back. Bad input comes back as a tool result
with ``is_error: true``, never as an exception, so the model can correct itself. The
same rules hold as over MCP: ``approval`` events come only from a person.

Works with the clients of the ``anthropic`` extra (``pip install agentflow[anthropic]``),
sync or async; replies may be SDK objects or plain dicts. This module does not import
``anthropic`` itself.

Example (async):
    tools = AnthropicTools(agent)
    messages = [{"role": "user", "content": "Write and start a plan that ..."}]
    while True:
        reply = await client.messages.create(model=model, max_tokens=4096,
                                             messages=messages, tools=tools.definitions)
        messages.append(assistant_message(reply))
        results = await tools.tool_results(reply)
        if results is None:
            break
        messages.append(results)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentflow.tools._sync import run_sync
from agentflow.tools._toolbox import (
    ToolAdapter,
    field,
    input_schema,
    result_content,
    specs_named,
)

__all__ = ["AnthropicTools", "assistant_message", "messages_tools"]


def messages_tools(tools: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Messages API tool definitions: ``{"name", "description", "input_schema"}``."""
    return [{"name": spec.name, "description": spec.description,
             "input_schema": input_schema(spec)} for spec in specs_named(tools)]


def assistant_message(reply: Any) -> dict[str, Any]:
    """A Messages reply as the assistant message to append to ``messages``."""
    content = []
    for block in field(reply, "content") or []:
        kind = field(block, "type")
        if kind == "text":
            content.append({"type": "text", "text": field(block, "text")})
        elif kind == "tool_use":
            content.append({"type": "tool_use", "id": field(block, "id"),
                            "name": field(block, "name"), "input": field(block, "input")})
        elif isinstance(block, dict):
            content.append(block)
        else:  # thinking and other blocks go back as the SDK gave them
            content.append(block.model_dump(exclude_none=True))
    return {"role": "assistant", "content": content}


class AnthropicTools(ToolAdapter):
    """The agent API as Anthropic tools, for one agent: ``AnthropicTools(agent, *, tools=None,
    context=None)`` (the tool names to offer, default all; the operator's rules)."""

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """The ``tools=`` of ``client.messages.create``."""
        return messages_tools(self.toolbox.names)

    async def tool_results(self, reply: Any) -> dict[str, Any] | None:
        """Run every ``tool_use`` block of a reply; the user message of ``tool_result``
        blocks to append, or None when the reply asked for no tool."""
        blocks = []
        for block in field(reply, "content") or []:
            if field(block, "type") != "tool_use":
                continue
            outcome = await self.toolbox.run(field(block, "name"), field(block, "input"))
            blocks.append({"type": "tool_result", "tool_use_id": field(block, "id"),
                           "content": result_content(outcome), "is_error": outcome.is_error})
        return {"role": "user", "content": blocks} if blocks else None

    def tool_results_sync(self, reply: Any) -> dict[str, Any] | None:
        """`tool_results` for sync code (the AgentFlow runs in another thread)."""
        return run_sync(self.toolbox.agent, self.tool_results(reply))
