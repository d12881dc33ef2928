"""The operator's approval policy, kept in the database so every front end obeys it.

Two settings, set by an operator (``agentflow policy ...`` or `OperatorPolicy`) and read
by every process that opens the database (an MCP server on stdio or HTTP, the OpenAI,
Anthropic and pydantic-ai adapters, a `Toolbox`):

- **human-only event types**: types a model-facing tool never sends (``send_event``
  refuses them; ``approve`` delivers only a person's decision). ``approval`` is always
  one of them and cannot be removed.
- **approvals**: ``elicit`` (default: the MCP ``approve`` tool asks the client's user
  through elicitation) or ``operator-only`` (it never elicits; a decision comes only from
  an operator surface: ``agentflow approve``/``reject`` or the Python API).

Why the database and not a flag: a flag lives in one process. A second front end on the
same database (a plain stdio server, ``OpenAITools(agent)``) would not know it, and
would let the agent send the type. A per-process setting therefore *writes* the policy
(`adopt_human_only`): the ``--human-only`` flag when its server starts, and, set from
Python, ``ServerConfig.human_only`` when its server starts and ``ToolContext.human_only``
at the first tool call that uses it, each recorded as made by ``operator <login> via
python ...``. Such a setting only adds types; ``agentflow policy human-only remove TYPE``
takes one away. Every change is appended to the store's operator log with who made it; nothing
is updated in place.

What this is not: elicitation is answered by whatever the client runs, its hooks
included (Claude Code hands an elicitation to ``Elicitation`` hooks before any person
sees it). ``operator-only`` is the setting for an operator who cannot vouch for the
client.
"""

from __future__ import annotations

import getpass
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from agentflow.errors import InvalidArgumentError
from agentflow.store import OperatorLogEntry, OperatorLogRow, Store

__all__ = [
    "ALWAYS_HUMAN_ONLY",
    "ApprovalPolicy",
    "ApprovalsMode",
    "OperatorAction",
    "OperatorPolicy",
    "adopt_human_only",
    "default_actor",
    "is_human_only",
]

#: The event type that is human-only whatever the policy says.
ALWAYS_HUMAN_ONLY: frozenset[str] = frozenset({"approval"})
ApprovalsMode = Literal["elicit", "operator-only"]
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}\Z")
_HUMAN_ONLY = "human_only:"
_APPROVALS = "approvals"


def is_human_only(event_type: str, human_only: Iterable[str]) -> bool:
    """Whether ``event_type`` is one of ``human_only``, ignoring case (so that
    ``Approval`` is not a way around ``approval``)."""
    folded = event_type.casefold()
    return any(folded == t.casefold() for t in human_only)


def default_actor(surface: str) -> str:
    """Who acts from this process: ``"operator <login> via <surface>"``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a container)
        user = "unknown"
    return f"operator {user} via {surface}"


class ApprovalPolicy(BaseModel):
    """The policy as read from the database.

    Attributes:
        human_only: event types only a person may send (always includes ``approval``).
        approvals: ``elicit`` or ``operator-only``.
    """

    model_config = ConfigDict(frozen=True)

    human_only: frozenset[str] = ALWAYS_HUMAN_ONLY
    approvals: ApprovalsMode = "elicit"


class OperatorAction(BaseModel):
    """One entry of the operator log: who did what, when."""

    model_config = ConfigDict(frozen=True)

    kind: str
    subject: str
    value: object
    at: datetime
    actor: str


def _action(row: OperatorLogRow) -> OperatorAction:
    return OperatorAction(kind=row.kind, subject=row.subject, value=json.loads(row.value),
                          at=datetime.fromtimestamp(row.at, UTC), actor=row.actor)


def check_event_type(event_type: object) -> str:
    if not isinstance(event_type, str) or not _EVENT_TYPE.match(event_type):
        raise InvalidArgumentError(f"{event_type!r} is not an event type: use 1 to 100 of "
                                   "letters, digits, '_' and '-', not starting with '-'")
    return event_type


class OperatorPolicy:
    """Read and change the approval policy of one database (operator side).

    Example:
        policy = OperatorPolicy(af.engine.store)
        await policy.add_human_only("deploy", by="ops@example.com")
        await policy.set_approvals("operator-only", by="ops@example.com")
        assert (await policy.read()).approvals == "operator-only"

    Args:
        store: an open store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self) -> ApprovalPolicy:
        """The policy in force now (defaults where nothing was set)."""
        human_only: dict[str, bool] = {}
        approvals: ApprovalsMode = "elicit"
        for row in await self.store.read_operator_log("policy"):
            value = json.loads(row.value)
            if row.subject.startswith(_HUMAN_ONLY):
                human_only[row.subject[len(_HUMAN_ONLY):]] = value is True
            elif row.subject == _APPROVALS and value in get_args(ApprovalsMode):
                approvals = value
        types = {t for t, on in human_only.items() if on} | ALWAYS_HUMAN_ONLY
        return ApprovalPolicy(human_only=frozenset(types), approvals=approvals)

    async def add_human_only(self, event_type: str, *, by: str | None = None) -> None:
        """Make ``event_type`` human-only for every front end on this database."""
        folded = check_event_type(event_type).casefold()
        await self._set(_HUMAN_ONLY + folded, True, by)

    async def remove_human_only(self, event_type: str, *, by: str | None = None) -> None:
        """Let agents send ``event_type`` again.

        Raises:
            InvalidArgumentError: ``approval``, which always stays human-only.
        """
        folded = check_event_type(event_type).casefold()
        if is_human_only(folded, ALWAYS_HUMAN_ONLY):
            raise InvalidArgumentError(f"{event_type!r} is always human-only: no agent may "
                                       "send it, whatever the policy says")
        await self._set(_HUMAN_ONLY + folded, False, by)

    async def set_approvals(self, mode: ApprovalsMode, *, by: str | None = None) -> None:
        """``elicit`` (default) or ``operator-only`` (the ``approve`` tool never elicits).

        Raises:
            InvalidArgumentError: another value.
        """
        if mode not in get_args(ApprovalsMode):
            raise InvalidArgumentError(f"approvals is 'elicit' or 'operator-only', not "
                                       f"{mode!r}")
        await self._set(_APPROVALS, mode, by)

    async def history(self) -> list[OperatorAction]:
        """Every policy change, oldest first, with who made it."""
        return [_action(r) for r in await self.store.read_operator_log("policy")]

    async def _set(self, subject: str, value: object, by: str | None) -> None:
        await self.store.append_operator_log("policy", subject, json.dumps(value),
                                             at=time.time(), actor=by or default_actor("python"))


async def adopt_human_only(store: Store, types: Iterable[str], *, by: str) -> list[str]:
    """Write into the database's policy each of ``types`` it does not hold yet, recorded
    as made by ``by``, and return those (folded, sorted). A human-only type set for one
    process (``ServerConfig.human_only``, ``ToolContext.human_only``, a ``--human-only``
    flag) must hold for every front end on the database, so it is written, never kept
    in the process alone; it only ever adds types."""
    policy = OperatorPolicy(store)
    held = {t.casefold() for t in (await policy.read()).human_only}
    added = sorted({check_event_type(t).casefold() for t in types} - held)
    for event_type in added:
        await policy.add_human_only(event_type, by=by)
    return added


def restart_entry(instance_id: str, *, from_step: str | None, at: float, by: str,
                  version: str | None = None) -> OperatorLogEntry:
    """The operator-log entry of a restart of ``instance_id``: the store writes it in the
    restart's own transaction (`InstanceChange.log`), so no restart goes unrecorded."""
    return OperatorLogEntry("restart", instance_id, json.dumps(
        {"from_step": from_step, **({"version": version} if version else {})}), at, by)


async def restarts(store: Store, instance_id: str) -> list[OperatorAction]:
    """The restarts of ``instance_id``, oldest first, with who made them."""
    return [_action(r) for r in await store.read_operator_log("restart", instance_id)]
