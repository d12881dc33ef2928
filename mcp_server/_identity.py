"""Who is calling: the agent behind a bearer token on HTTP, the configured one on stdio."""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver.exceptions import ToolError

from agentflow.plans import Agent, AgentFlow
from mcp_server._config import ServerConfig

__all__ = ["Identity"]


class Identity:
    """Resolves the calling agent for each request.

    With tokens configured there is no fallback: a request without a verified token
    (which the HTTP layer already answers with 401) reaches no agent at all.
    """

    def __init__(self, af: AgentFlow, config: ServerConfig) -> None:
        self.af = af
        self.config = config

    def agent_id(self) -> str:
        token = get_access_token()
        if token is not None:
            return token.client_id
        if self.config.tokens:
            raise ToolError("this server requires a bearer token that names an agent")
        if self.config.agent_id is None:
            raise ToolError("no agent is configured: start the server with --agent ID or "
                            "$AGENTFLOW_AGENT")
        return self.config.agent_id

    def agent(self) -> Agent:
        return self.af.agent(self.agent_id())
