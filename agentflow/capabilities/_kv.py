"""``env.kv``: per-agent durable key-value storage in the store."""

from __future__ import annotations

import json
from typing import Any

from agentflow._limits import Quotas, encode_value, quota_error
from agentflow.capabilities._base import Capability, CapabilityContext, CapabilityError
from agentflow.errors import storable_text

MAX_KEY = 512


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise CapabilityError(f"a kv key must be a string of 1 to {MAX_KEY} characters")
    if storable_text(key) != key:
        raise CapabilityError(f"kv key {key[:40]!a} holds a lone surrogate, which UTF-8 "
                              f"cannot store; use plain text")
    return key


class KVCapability(Capability):
    """``get(key, default=None)``, ``set(key, value)``, ``delete(key)``,
    ``list(prefix="")``. Values are JSON, at most 1 MiB; each agent has its own space."""

    name = "kv"
    methods = frozenset({"get", "set", "delete", "list"})

    async def do_get(self, ctx: CapabilityContext, key: str, default: Any = None) -> Any:
        """The JSON value stored under key, or default."""
        text = await ctx.store.kv_get(ctx.agent_id, _key(key))
        return default if text is None else json.loads(text)

    async def do_set(self, ctx: CapabilityContext, key: str, value: Any) -> None:
        """Store a JSON value under key (this agent's keys only)."""
        text = encode_value(value, what=f"kv value for {key!r}")
        quotas = ctx.quotas if ctx.quotas is not None else Quotas()
        over = await ctx.store.kv_set_within(ctx.agent_id, _key(key), text, ctx.now,
                                             max_keys=quotas.agent_kv_keys,
                                             max_bytes=quotas.agent_kv_bytes)
        if over is not None:
            keys, size = over
            if keys > quotas.agent_kv_keys:
                raise quota_error("agent_kv_keys", quotas.agent_kv_keys,
                                  f"kv.set({key[:60]!r}) would make this agent's kv space "
                                  f"hold {keys:,} keys", "Delete keys you no longer need.")
            raise quota_error("agent_kv_bytes", quotas.agent_kv_bytes,
                              f"kv.set({key[:60]!r}) would make this agent's kv space hold "
                              f"{size:,} bytes", "Delete keys or store smaller values.")

    async def do_delete(self, ctx: CapabilityContext, key: str) -> bool:
        """Delete key; True if it existed."""
        return await ctx.store.kv_delete(ctx.agent_id, _key(key))

    async def do_list(self, ctx: CapabilityContext, prefix: str = "") -> list[str]:
        """The keys that start with prefix."""
        if not isinstance(prefix, str):
            raise CapabilityError("kv.list(prefix): prefix must be a string")
        return await ctx.store.kv_list(ctx.agent_id, prefix)
