"""agentflow's agent API as OpenAI tools: Chat Completions and Responses.

The definitions come from the same pydantic models as the MCP server's tools, and a
handler runs the model's tool calls for one agent and returns the result messages in
the API's own shape. Bad input (a malformed plan, wrong types, an unknown id) comes
back as a tool result that starts with ``Error:``, never as an exception, so the
model can correct itself. The same rules hold as over MCP: ``approval`` events come
only from a person.

Works with the clients of the ``openai`` extra (``pip install agentflow[openai]``),
sync or async; replies may be SDK objects or plain dicts. This module does not import
``openai`` itself.

Example (async, Chat Completions):
    tools = OpenAITools(agent)
    messages = [{"role": "user", "content": "Write and start a plan that ..."}]
    while True:
        reply = await client.chat.completions.create(model=model, messages=messages,
                                                     tools=tools.chat_completions)
        message = reply.choices[0].message
        messages.append(assistant_message(message))
        if not message.tool_calls:
            break
        messages += await tools.chat_results(message)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentflow.tools._registry import ToolOutcome
from agentflow.tools._sync import run_sync
from agentflow.tools._toolbox import (
    ToolAdapter,
    arguments_text,
    field,
    input_schema,
    result_content,
    specs_named,
)

__all__ = [
    "OpenAITools",
    "assistant_message",
    "chat_completions_tools",
    "responses_tools",
]


def chat_completions_tools(tools: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Chat Completions tool definitions: ``{"type": "function", "function": {...}}``.

    ``strict`` is off: the argument models have optional fields with defaults, which
    OpenAI's strict mode cannot express; the arguments are validated by agentflow.
    """
    return [{"type": "function",
             "function": {"name": spec.name, "description": spec.description,
                          "parameters": input_schema(spec), "strict": False}}
            for spec in specs_named(tools)]


def responses_tools(tools: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Responses API tool definitions: ``{"type": "function", "name": ..., ...}``."""
    return [{"type": "function", "name": spec.name, "description": spec.description,
             "parameters": input_schema(spec), "strict": False}
            for spec in specs_named(tools)]


def assistant_message(message: Any) -> dict[str, Any]:
    """A Chat Completions reply message as the dict to append to ``messages``."""
    out: dict[str, Any] = {"role": "assistant", "content": field(message, "content")}
    calls = field(message, "tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {"id": field(call, "id"), "type": "function",
             "function": {"name": field(field(call, "function"), "name"),
                          "arguments": arguments_text(
                              field(field(call, "function"), "arguments"))}}
            for call in calls]
    return out


class OpenAITools(ToolAdapter):
    """The agent API as OpenAI tools, for one agent: ``OpenAITools(agent, *, tools=None,
    context=None)`` (the tool names to offer, default all; the operator's rules)."""

    @property
    def chat_completions(self) -> list[dict[str, Any]]:
        """The ``tools=`` of ``client.chat.completions.create``."""
        return chat_completions_tools(self.toolbox.names)

    @property
    def responses(self) -> list[dict[str, Any]]:
        """The ``tools=`` of ``client.responses.create``."""
        return responses_tools(self.toolbox.names)

    # -- Chat Completions ------------------------------------------------------------
    async def chat_results(self, message: Any) -> list[dict[str, Any]]:
        """Run every tool call of a reply message; the ``{"role": "tool", ...}``
        messages to append, in order."""
        return [_tool_message(call, await self.toolbox.run(*_chat_call(call)))
                for call in field(message, "tool_calls") or []]

    def chat_results_sync(self, message: Any) -> list[dict[str, Any]]:
        """`chat_results` for sync code (the AgentFlow runs in another thread)."""
        return run_sync(self.toolbox.agent, self.chat_results(message))

    # -- Responses -------------------------------------------------------------------
    async def responses_results(self, response: Any) -> list[dict[str, Any]]:
        """Run every ``function_call`` of a response (or of a list of output items);
        the ``function_call_output`` items to send as the next input."""
        out = []
        for item in _function_calls(response):
            outcome = await self.toolbox.run(field(item, "name"), field(item, "arguments"))
            out.append({"type": "function_call_output", "call_id": field(item, "call_id"),
                        "output": result_content(outcome)})
        return out

    def responses_results_sync(self, response: Any) -> list[dict[str, Any]]:
        """`responses_results` for sync code (the AgentFlow runs in another thread)."""
        return run_sync(self.toolbox.agent, self.responses_results(response))


def _chat_call(call: Any) -> tuple[str, Any]:
    function = field(call, "function")
    return field(function, "name"), field(function, "arguments")


def _tool_message(call: Any, outcome: ToolOutcome) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": field(call, "id"),
            "content": result_content(outcome)}


def _function_calls(response: Any) -> list[Any]:
    items = response if isinstance(response, list) else field(response, "output") or []
    return [item for item in items if field(item, "type") == "function_call"]
