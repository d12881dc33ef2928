"""What a front end hands the shared handlers: the operator's rules and its channels.

The handlers know nothing of MCP or of a model API. A front end passes a `ToolContext`
that says how to report progress and, where it has one, how to ask a person
(`ask_human`). Without ``ask_human`` the ``approve`` tool cannot reach a person, so it
leaves the instance waiting: it never fails open.

Which event types are human-only, and whether ``approve`` may ask through the client
at all, is the operator's policy in the database (`agentflow.policy`), read on every
call: a front end can add types (``human_only``, which it writes into that policy)
but never take one away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentflow.errors import HumanOnlyEventError, UsageError
from agentflow.policy import ALWAYS_HUMAN_ONLY, is_human_only
from agentflow.tools._approval import ApprovalRequest
from agentflow.tools._models import HumanDecision

__all__ = [
    "DEFAULT_HUMAN_ONLY",
    "ApprovalRequest",
    "AskHuman",
    "HumanAnswer",
    "HumanOnlyEventError",
    "ProgressCallback",
    "ToolContext",
    "is_human_only",
]

#: Event types only a person may send, unless the operator adds more (in the database:
#: see `agentflow.policy`).
DEFAULT_HUMAN_ONLY: frozenset[str] = ALWAYS_HUMAN_ONLY




class HumanAnswer(BaseModel):
    """A person's answer, as a front end received it.

    Attributes:
        action: ``accept`` (they decided: see ``decision``), ``decline`` or ``cancel``
            (they closed the request without deciding).
        decision: approve or reject, and a comment, when accepted.
        request: the request the person actually saw. The handler delivers the
            decision only if the instance still matches it.
    """

    model_config = ConfigDict(frozen=True)

    action: Literal["accept", "decline", "cancel"]
    decision: HumanDecision | None = None
    request: ApprovalRequest


#: Asks a person about a request; returns None when no person can be asked.
AskHuman = Callable[[ApprovalRequest], Awaitable[HumanAnswer | None]]
#: ``(progress, total, message)``, as MCP progress notifications carry them.
ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]


@dataclass(frozen=True)
class ToolContext:
    """The operator's rules and the front end's channels for one tool call.

    Attributes:
        human_only: more event types that ``send_event`` refuses and only ``approve``
            (a person) delivers, compared case-insensitively. The first tool call
            that uses this context writes the ones the database's policy lacks into
            it (recorded as ``operator <login> via python ToolContext.human_only``), so
            every front end on the database refuses them from then on; they add to
            the policy, never replace it, and ``approval`` always stays a person's.
        ask_human: how to ask a person, where the front end has a way (MCP
            elicitation); None means there is no person to ask.
        report_progress: called while ``wait_for_instance`` waits.
    """

    human_only: frozenset[str] = DEFAULT_HUMAN_ONLY
    ask_human: AskHuman | None = None
    report_progress: ProgressCallback | None = None

    def __post_init__(self) -> None:
        if isinstance(self.human_only, str):
            raise UsageError("human_only is a set of event types, not one string")
        object.__setattr__(self, "human_only",
                           DEFAULT_HUMAN_ONLY | frozenset(self.human_only))
