"""Runs corpus plans the way a model's session would: validate (with the agent's
grants), submit, start, then drive the instance to its end on a manual clock, sending
the events the plan's header names whenever it waits for one.

A corpus file starts with ``#`` header lines, ``key: value``:

- ``params``: JSON params for start (default ``{}``)
- ``grants``: capability names granted to the agent (``kv``, ``mail``)
- ``events``: JSON object, event type -> payload, sent when the plan waits for it
- ``output``: the JSON output the run must return
- ``expect``: ``AFnnn on: <text>``: validation must report that code on the first line
  holding <text>
- ``hint-says``: text the finding's hint must contain, and the fixed plan too (or
  ``applied``: what the fix put into the plan, for a hint that describes it)
- ``fix``: ``<old> => <new>``, applied in order to make the fixed plan (repeatable)
- ``error``: ``<ErrorName> on: <text>``: the run must error there (the error corpus)
- ``function``, ``step``, ``after-step``: where the error record must place it
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentflow.capabilities import Capability, CapabilityContext, KVCapability
from agentflow.models import InstanceStatus
from agentflow.plans import Agent
from agentflow.testing import ManualClock

HERE = Path(__file__).parent


class MailCapability(Capability):
    """A stand-in mail service: records what was sent; the first send to a name fails."""

    name = "mail"
    methods = frozenset({"send"})

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []
        self.tries: dict[str, int] = {}

    async def do_send(self, ctx: CapabilityContext, to: str, text: str) -> dict[str, str]:
        """Send text to an address; a busy server fails the first try."""
        self.tries[to] = self.tries.get(to, 0) + 1
        if self.tries[to] == 1:
            raise ConnectionError("mail server busy")
        self.sent.append({"to": to, "text": text})
        return {"to": to, "status": "sent"}


def grants(names: list[str]) -> dict[str, Capability]:
    made: dict[str, Capability] = {"kv": KVCapability(), "mail": MailCapability()}
    return {name: made[name] for name in names}


@dataclass
class CorpusPlan:
    path: Path
    source: str
    header: dict[str, str]
    fixes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    def json(self, key: str, default: Any = None) -> Any:
        return json.loads(self.header[key]) if key in self.header else default

    @property
    def grant_names(self) -> list[str]:
        return self.header.get("grants", "").split()

    def line_of(self, text: str, source: str | None = None) -> int:
        for number, line in enumerate((source or self.source).splitlines(), 1):
            if text in line and not line.lstrip().startswith("#"):
                return number
        raise AssertionError(f"{self.name}: no line holds {text!r}")

    def expected(self, key: str) -> tuple[str, str]:
        code, _, text = self.header[key].partition(" on: ")
        return code.strip(), text.strip()

    def fixed(self) -> str:
        lines = self.source.splitlines(keepends=True)
        head = next(i for i, line in enumerate(lines) if not line.startswith("# "))
        source = "".join(lines[head:])  # the fixes apply to the plan, not its header
        for old, new in self.fixes:
            assert old in source, f"{self.name}: the fix {old!r} matches nothing"
            source = source.replace(old, new, 1)
        return "".join(lines[:head]) + source


def load(folder: str) -> list[CorpusPlan]:
    plans = []
    for path in sorted((HERE / folder).glob("*.py")):
        source = path.read_text()
        header: dict[str, str] = {}
        fixes: list[tuple[str, str]] = []
        for line in source.splitlines():
            if not line.startswith("# "):
                break
            key, _, value = line[2:].partition(": ")
            if key == "fix":
                old, _, new = value.partition(" => ")
                fixes.append((old, new))
            else:
                header[key] = value
        plans.append(CorpusPlan(path, source, header, fixes))
    return plans


async def drive(agent: Agent, clock: ManualClock, plan: CorpusPlan, source: str,
                name: str) -> InstanceStatus:
    """Submit ``source``, start it with the plan's params and run it to its end."""
    await agent.submit_plan(name, source)
    inst = await agent.start(name, params=plan.json("params", {}))
    events = dict(plan.json("events", {}))
    status = await inst.wait(timeout=60)
    for _ in range(200):
        if status.status != "waiting" or status.waiting_on is None:
            break
        w = status.waiting_on
        if w.kind == "event" and w.type in events:
            await inst.send_event(w.type, events.pop(w.type))
        else:  # a sleep, a retry, or an event that never comes: its deadline
            clock.advance(max(0.0, w.until.timestamp() - clock.now()) + 0.001)
        status = await inst.wait(timeout=60)
    return status
