"""``env.approval_links``: a plan asks for a signed approval link to its own instance.

The operator grants it like any capability (``af.agent(id, capabilities={
"approval_links": ApprovalLinksCapability("https://console.example.com")})``); a plan
without the grant cannot make links. A link made by a plan names the instance, not one
wait (the plan makes it before it waits): it opens the approval the instance waits for
when the person follows it, and, like every link, answers once and expires.

The link is signed with the console's secret: the one kept in the database (what
``agentflow serve`` uses unless ``$AGENTFLOW_CONSOLE_SECRET`` is set), or the
``secret`` given here, which must then be the same as the console's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentflow._durations import parse_duration
from agentflow.capabilities import Capability, CapabilityContext, CapabilityError
from agentflow.console._auth import Signer
from agentflow.console._data import stored_secret

__all__ = ["ApprovalLinksCapability"]


class ApprovalLinksCapability(Capability):
    """``link()`` returns ``{"url", "expires"}``: a single-use link to this instance's
    approval, for a person to open in the console.

    Args:
        console_url: where people reach the console (``https://host[:port]``).
        secret: the console's signing secret, if ``agentflow serve`` was given one
            (``$AGENTFLOW_CONSOLE_SECRET``); None reads the one kept in the database.
        lifetime: how long a link works (a duration: ``"1 day"``, seconds, ...).
    """

    name = "approval_links"
    methods = frozenset({"link"})

    def __init__(self, console_url: str, *, secret: bytes | None = None,
                 lifetime: Any = "1 day") -> None:
        if not console_url.startswith(("https://", "http://")):
            raise ValueError(f"console_url {console_url!r} must start with https://")
        self.console_url = console_url.rstrip("/")
        self._secret = secret
        self.lifetime = float(parse_duration(lifetime))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "lifetime_seconds": self.lifetime}

    async def do_link(self, ctx: CapabilityContext) -> dict[str, str]:
        secret = self._secret or await stored_secret(ctx.store, ctx.now)
        try:
            signer = Signer(secret)
        except ValueError as exc:
            raise CapabilityError(f"approval links are misconfigured: {exc}") from None
        token = signer.new_link(ctx.instance_id, "", lifetime=self.lifetime,
                                by=f"plan of agent {ctx.agent_id}")
        claims = signer.link(token)
        assert claims is not None
        return {"url": f"{self.console_url}/link/{token}",
                "expires": datetime.fromtimestamp(claims.expires, UTC).isoformat()}
