"""Each shared tool (`agentflow.tools.TOOLS`) as an MCP tool.

`MCPServer` derives a tool's input schema from the function's signature, so every tool
gets a function whose signature is built from its pydantic argument model: field by
field, with the same types, constraints and descriptions, plus the `Context`. The
published input schema is then the argument model's schema, the very one the OpenAI and
Anthropic adapters send. (Rejected: one parameter typed as the model, which nests every
argument under a single key; and building `Tool` objects by hand, which reaches into
the SDK's private resolver plumbing.)

The return annotation ``Annotated[CallToolResult, ResultModel]`` publishes the result
model as the output schema while the function builds the result itself: the summary as
the first text block, the structured result as ``structuredContent`` and, for clients
that only read text, its JSON as a second block.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from agentflow.tools import ToolContext, ToolOutcome, ToolSpec, call_tool
from mcp_server._identity import Identity

__all__ = ["signature_parameters", "to_call_tool_result", "tool_function"]


def signature_parameters(model: type[BaseModel]) -> list[inspect.Parameter]:
    """Keyword-only parameters mirroring ``model``'s fields."""
    params = []
    for name, info in model.model_fields.items():
        annotation = cast(Any, Annotated)[(info.annotation, *info.metadata, Field(
            description=info.description, title=info.title))]
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=annotation))
    return params


def set_signature(fn: Callable[..., Any], name: str, params: list[inspect.Parameter],
                  result_model: type[BaseModel]) -> None:
    """Give ``fn`` the signature and annotations the SDK reads to build the tool."""
    returns = Annotated[CallToolResult, result_model]
    fn.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    fn.__name__ = fn.__qualname__ = name


def to_call_tool_result(outcome: ToolOutcome) -> CallToolResult:
    """A shared tool outcome as MCP content: error text, or summary + structured JSON."""
    if outcome.result is None:
        return CallToolResult(content=[TextContent(type="text", text=outcome.text)],
                              is_error=True)
    structured = outcome.result.model_dump(mode="json")
    return CallToolResult(
        content=[TextContent(type="text", text=outcome.text),
                 TextContent(type="text", text=outcome.result.model_dump_json())],
        structured_content=structured)


def annotations_for(spec: ToolSpec[Any, Any]) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=spec.read_only, destructive_hint=spec.destructive,
                           open_world_hint=False)


def progress_reporter(ctx: Context) -> Callable[[float, float | None, str], Any]:
    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, message)
    return report


def tool_function(spec: ToolSpec[Any, Any], identity: Identity) -> Callable[..., Any]:
    """An MCP tool function for one shared tool (every tool but ``approve``)."""

    async def run(ctx: Context, **arguments: Any) -> CallToolResult:
        context = ToolContext(human_only=identity.config.human_only,
                              report_progress=progress_reporter(ctx))
        return to_call_tool_result(await call_tool(identity.agent(), spec.name, arguments,
                                                   context))

    params = signature_parameters(spec.args_model)
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    set_signature(run, spec.name, params, spec.result_model)
    return run
