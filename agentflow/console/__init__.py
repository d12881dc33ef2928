"""The operator's console: a web page to watch plans and answer approvals, live.

`create_app(flow, config)` returns a Starlette application over an `AgentFlow`;
``agentflow serve`` runs it together with a worker (and, optionally, the MCP server on
``/mcp``). Pages are rendered on the server and update themselves from the change feed
(`AgentFlow.subscribe`) through server-sent events.

Who may do what (see `agentflow.console._auth`): operators sign in with their own
tokens (not the agents' MCP tokens); ``read-only`` operators may look, ``operator``s
may also act; every action needs the session's CSRF token. Approval links are signed,
single-use and expiring, and answer exactly one wait.

Needs ``jinja2`` (``pip install "agentflow[console]"``); importing ``agentflow`` never
imports this package.
"""

from agentflow.console._app import ConsoleConfig, create_app
from agentflow.console._auth import Operator, SignInLimit, parse_operators
from agentflow.console._links import ApprovalLinksCapability

__all__ = ["ApprovalLinksCapability", "ConsoleConfig", "Operator", "SignInLimit", "create_app",
           "parse_operators"]
