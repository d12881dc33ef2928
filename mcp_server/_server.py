"""`build_server`: agentflow's tools, resources and prompts on one `MCPServer`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel, ConfigDict, ValidationError

from agentflow import __version__
from agentflow.errors import AgentflowError, NotFoundError
from agentflow.plans import AgentFlow
from agentflow.policy import adopt_human_only, default_actor
from agentflow.tools import (
    TOOLS,
    ToolContext,
    call_tool,
    format_validation_error,
    load_prompt,
)
from mcp_server._approve import approve_function
from mcp_server._config import SCOPE, ServerConfig, StaticTokenVerifier
from mcp_server._identity import Identity
from mcp_server._tools import annotations_for, tool_function
from mcp_server._updates import InstanceUpdates

__all__ = ["INSTRUCTIONS", "build_server"]

INSTRUCTIONS = """\
agentflow runs durable plans: Python `async def run(event, step)` functions that survive
restarts, sleep for days, retry failing steps and wait for events and human approvals.
Read agentflow://docs/plan-api before writing a plan. Then: validate_plan (fix every
diagnostic), submit_plan, start_instance, wait_for_instance or get_instance.
Approval events come from people, not from you: call approve, which asks a person.
"""


def build_server(af: AgentFlow, config: ServerConfig, *, host: str = "127.0.0.1",
                 port: int = 8000) -> MCPServer:
    """An MCP server for ``af`` (which the caller starts and closes).

    Args:
        af: the agent layer on the store the tools act on.
        config: identities and human-only event types.
        host: the HTTP host, for the issuer URL of token auth (HTTP only).
        port: the HTTP port, likewise.

    Returns:
        The server. Run it with ``run_stdio_async()`` or
        ``run_streamable_http_async(...)``, or connect ``mcp.Client(server)`` in memory.
    """
    verifier, auth = None, None
    if config.tokens:  # HTTP: every request needs a token; the SDK answers 401 otherwise
        verifier = StaticTokenVerifier(config.tokens)
        auth = AuthSettings(issuer_url=f"http://{host}:{port}/",  # type: ignore[arg-type]
                            resource_server_url=None, required_scopes=[SCOPE])
    identity = Identity(af, config)
    tools = []
    for spec in TOOLS.values():
        fn = approve_function(identity) if spec.name == "approve" else tool_function(
            spec, identity)
        tools.append(strict(Tool.from_function(fn, name=spec.name,
                                               description=spec.description,
                                               annotations=annotations_for(spec))))
    # subscriptions/listen (2026-07-28): resource-updated notifications for the
    # caller's own instances, from agentflow's change feed (see _updates.py).
    updates = InstanceUpdates(af, identity)
    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[dict[str, Any]]:
        # ServerConfig.human_only holds for every front end on the database, not this
        # server alone: written into its policy when the server starts.
        await adopt_human_only(af.engine.store, config.human_only,
                               by=default_actor("python ServerConfig.human_only"))
        yield {}

    server: MCPServer = MCPServer("agentflow", instructions=INSTRUCTIONS, version=__version__,
                                  log_level="WARNING", token_verifier=verifier, auth=auth,
                                  tools=tools, subscriptions=updates, lifespan=lifespan)
    updates.serve_legacy(server)  # resources/subscribe (2025-11-25)
    _add_resources(server, identity)
    _add_prompts(server, identity)
    return server


class _SharedTool(Tool):
    """A tool whose bad arguments are reported as the adapters report them
    (`format_validation_error`: each bad field, then the accepted fields), instead of
    the SDK's raw pydantic text with its links to pydantic's documentation."""

    async def run(self, arguments: dict[str, Any], context: Any,
                  convert_result: bool = False) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            raise ToolError("Error: " + format_validation_error(self.name, exc)) from exc
        return await super().run(arguments, context, convert_result)


def strict(tool: Tool) -> Tool:
    """``tool``, refusing arguments its schema does not name, as the shared argument
    models do: a misspelt ``fromStep`` must be an error the model reads, not a restart
    from the top that drops the journal."""
    base = tool.fn_metadata.arg_model
    tool.fn_metadata.arg_model = type(f"{tool.name}_arguments", (base,), {
        "model_config": ConfigDict(extra="forbid", arbitrary_types_allowed=True)})
    tool.parameters = {**tool.parameters, "additionalProperties": False}
    tool.__class__ = _SharedTool  # same fields; only the validation error text differs
    return tool


def _add_resources(server: MCPServer, identity: Identity) -> None:
    @server.resource("agentflow://docs/plan-api", name="plan-api", mime_type="text/markdown",
                     description="How to write a plan: the event and step API, the rules "
                                 "the validator enforces (with codes), patterns.")
    def plan_api() -> str:
        return load_prompt("plan-authoring")

    @server.resource("agentflow://docs/validator-codes", name="validator-codes",
                     mime_type="text/markdown",
                     description="Every validator diagnostic code, what it means and how "
                                 "to fix it.")
    def validator_codes() -> str:
        return load_prompt("validator-codes")

    @server.resource("agentflow://capabilities", name="capabilities",
                     mime_type="application/json",
                     description="What your plans' env holds: each granted capability, "
                                 "how a plan calls its methods, and its limits.")
    async def capabilities() -> str:
        outcome = await call_tool(identity.agent(), "describe_capabilities", {})
        if outcome.result is None:
            raise ResourceError(outcome.error or "cannot describe the capabilities")
        return outcome.result.model_dump_json(indent=1)

    @server.resource("agentflow://plans/{name}", name="plan-source", mime_type="text/x-python",
                     description="The source of the current version of one of your plans.")
    async def plan_source(name: str) -> str:
        try:
            return await identity.agent().plan_source(name)
        except NotFoundError as exc:  # -32602, as the SDK has it for a missing resource
            raise ResourceNotFoundError(str(exc)) from None
        except AgentflowError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("agentflow://instances/{id}", name="instance",
                     mime_type="application/json",
                     description="One of your instances: its status and its journal.")
    async def instance(id: str) -> str:
        try:
            return (await _history(identity, id, 500)).model_dump_json(indent=1)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except AgentflowError as exc:
            raise ResourceError(str(exc)) from None


async def _history(identity: Identity, instance_id: str, limit: int) -> BaseModel:
    """The agent's ``get_history`` result for one of its instances.

    Raises:
        NotFoundError: no instance of this agent has that id (or it is malformed).
        AgentflowError: the history could not be read.
    """
    agent = identity.agent()
    await agent.get(instance_id)  # a missing id, told apart from other failures
    outcome = await call_tool(agent, "get_history",
                              {"instance_id": instance_id, "limit": limit},
                              ToolContext(human_only=identity.config.human_only))
    if outcome.result is None:
        raise AgentflowError(outcome.error or f"cannot read instance {instance_id!r}")
    return outcome.result


def _add_prompts(server: MCPServer, identity: Identity) -> None:
    @server.prompt("author_plan", description="Write, validate, submit and start a durable "
                                              "plan for a goal.")
    def author_plan(goal: str) -> str:
        return (f"{load_prompt('plan-authoring')}\n\n---\n\n"
                f"Goal: {goal}\n\n"
                "Write a plan for this goal. Call validate_plan and fix every diagnostic "
                "until it is ok, then submit_plan, start_instance with the params it "
                "needs, and wait_for_instance. If it waits for an approval, call approve.")

    @server.prompt("debug_instance", description="Find out why an instance errored or is "
                                                 "stuck, and fix it.")
    async def debug_instance(instance_id: str) -> str:
        # An MCPError reaches the client as it is; anything else would become the SDK's
        # "Error rendering prompt", which tells a model nothing.
        try:
            data = (await _history(identity, instance_id, 200)).model_dump(mode="json")
        except NotFoundError as exc:
            raise MCPError(INVALID_PARAMS, f"{exc}: list_instances shows your instances"
                           ) from None
        except AgentflowError as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        return (f"{load_prompt('debug-instance')}\n\n---\n\n"
                f"Instance {instance_id}:\n\n```json\n{json.dumps(data, indent=1)}\n```")
