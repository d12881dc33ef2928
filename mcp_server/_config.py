"""Operator configuration: who the agent is, which tokens map to which agents, which event
types only a person may send."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mcp.server.auth.provider import AccessToken

from agentflow.errors import InvalidArgumentError
from agentflow.tools import DEFAULT_HUMAN_ONLY

__all__ = ["SCOPE", "ServerConfig", "StaticTokenVerifier", "parse_tokens"]

#: The one scope a token grants: the whole tool set, for its own agent.
SCOPE = "agentflow"
_AGENT_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,100}\Z")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}\Z")


@dataclass(frozen=True)
class ServerConfig:
    """How one server identifies its callers and which events need a person.

    Attributes:
        agent_id: the agent on stdio (and in memory), where there is no token.
        tokens: bearer token -> agent id, for HTTP. When set, every request must carry
            one of them and there is no fallback to ``agent_id``.
        human_only: event types that ``send_event`` refuses and ``approve`` delivers
            only with a person's decision. Always includes ``approval``. The server
            writes the ones the database's policy lacks into it when it starts (and
            at the latest at its first tool call), recorded as ``operator <login> via
            python ServerConfig.human_only``, so that every front end on the database
            refuses them, not this server alone (see `agentflow.policy`).
    """

    agent_id: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    human_only: frozenset[str] = DEFAULT_HUMAN_ONLY

    def __post_init__(self) -> None:
        if self.agent_id is not None:
            _check_agent_id(self.agent_id, "the agent id")
        for token, agent in self.tokens.items():
            if not token or token != token.strip():
                raise InvalidArgumentError("a bearer token must be non-empty, without "
                                           "surrounding spaces")
            _check_agent_id(agent, "the agent of a token")
        for event_type in self.human_only:
            if not _EVENT_TYPE.match(event_type):
                raise InvalidArgumentError(f"human-only event type {event_type!r} is not a "
                                           "valid event type")
        object.__setattr__(self, "human_only", DEFAULT_HUMAN_ONLY | self.human_only)


def _check_agent_id(agent_id: str, what: str) -> None:
    if not _AGENT_ID.match(agent_id):
        raise InvalidArgumentError(f"{what} {agent_id!r} is invalid: use 1 to 100 of "
                                   "letters, digits and _ . @ -")


def parse_tokens(pairs: Iterable[str], env_json: str | None) -> dict[str, str]:
    """Tokens from ``--token TOKEN=AGENT`` pairs and ``$AGENTFLOW_MCP_TOKENS``
    (a JSON object ``{"TOKEN": "AGENT"}``). A pair given on the command line wins.

    Raises:
        InvalidArgumentError: a pair without ``=``, or JSON that is not such an object.
    """
    tokens: dict[str, str] = {}
    if env_json:
        try:
            loaded = json.loads(env_json)
        except ValueError as exc:
            raise InvalidArgumentError(f"$AGENTFLOW_MCP_TOKENS is not JSON: {exc}") from None
        if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()):
            raise InvalidArgumentError('$AGENTFLOW_MCP_TOKENS must be a JSON object '
                                       '{"TOKEN": "AGENT_ID", ...}')
        tokens.update(loaded)
    for pair in pairs:
        token, sep, agent = pair.rpartition("=")
        if not sep or not token or not agent:
            raise InvalidArgumentError(f"--token {pair[:8]}... must look like TOKEN=AGENT_ID")
        tokens[token] = agent
    return tokens


class StaticTokenVerifier:
    """Bearer tokens from the operator's configuration, each naming one agent.

    The agent id travels as the access token's ``client_id``. Comparison is
    constant-time, so response timing does not reveal how much of a guess was right.
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(t.encode(), agent) for t, agent in tokens.items()]

    async def verify_token(self, token: str) -> AccessToken | None:
        given = token.encode()
        found = None
        for known, agent in self._tokens:
            if hmac.compare_digest(known, given) and found is None:
                found = agent
        if found is None:
            return None
        return AccessToken(token=token, client_id=found, subject=found, scopes=[SCOPE])
