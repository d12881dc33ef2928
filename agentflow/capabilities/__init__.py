"""Capabilities: what the host grants an agent's plans, and nothing else.

A plan sees a global ``env`` holding only the capabilities its agent was granted; the
default is none at all (the counterpart of Cloudflare's ``globalOutbound: null``).
Inside the sandbox each one is a stub that asks the host; the host object here performs
the call and enforces the grant (allowlists, size and time caps). A plan never holds a
client, a key or a module.

Every capability is a small object with a ``name`` and an async ``call(method, args,
kwargs, context)``. Transient failures are retried with tenacity *inside* the call; the
step's own retries stay durable timers around it.
"""

from agentflow.capabilities._base import Capability, CapabilityContext, CapabilityError
from agentflow.capabilities._http import HttpCapability
from agentflow.capabilities._kv import KVCapability
from agentflow.capabilities._llm import LLMCapability
from agentflow.capabilities._tools import ToolsCapability

__all__ = [
    "Capability",
    "CapabilityContext",
    "CapabilityError",
    "HttpCapability",
    "KVCapability",
    "LLMCapability",
    "ToolsCapability",
]
