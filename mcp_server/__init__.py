"""agentflow's MCP server: agents author, run and steer durable plans from any MCP client.

Built on the official ``mcp`` SDK (``MCPServer``) over agentflow's public API. The tools
themselves live in `agentflow.tools`, shared with the OpenAI and Anthropic adapters;
this package only puts them on the wire:

- `mcp_server._tools`: each shared tool as an MCP tool (typed input schema from its
  argument model, structured output from its result model, a plain-text summary);
- `mcp_server._approve`: ``approve`` asks a person through elicitation, in the resolver
  form that works on both the 2025-11-25 and the stateless 2026-07-28 protocol;
- `mcp_server._identity` and `mcp_server._config`: the agent comes from the bearer
  token on HTTP and from ``--agent``/``$AGENTFLOW_AGENT`` on stdio;
- `mcp_server._server`: tools, the resources ``agentflow://docs/plan-api``,
  ``agentflow://plans/{name}`` and ``agentflow://instances/{id}``, and the prompts
  ``author_plan`` and ``debug_instance``;
- `mcp_server.__main__`: the ``agentflow-mcp`` command.

What it is not: the server trusts its MCP client to show elicitations to a person. A
client that answers elicitations automatically (without a person) approves on the
agent's behalf; use such a client without elicitation so that approvals stay pending
for an operator. Nothing imports this package; it is an application.

Example:
    af = AgentFlow("sqlite:///agentflow.db")
    server = build_server(af, ServerConfig(agent_id="agent-42"))
    async with af:
        await server.run_stdio_async()
"""

from mcp_server._config import ServerConfig, StaticTokenVerifier, parse_tokens
from mcp_server._server import INSTRUCTIONS, build_server

__all__ = ["INSTRUCTIONS", "ServerConfig", "StaticTokenVerifier", "build_server",
           "parse_tokens"]
