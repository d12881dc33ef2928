"""What a front end hands the shared handlers: the operator's rules and its channels.

The handlers know nothing of MCP or of a model API. A front end passes a `ToolContext`
that says which event types are human-only, how to report progress, and, where it has
one, how to ask a person (`ask_human`). Without ``ask_human`` the ``approve`` tool
cannot reach a person, so it leaves the instance waiting: it never fails open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentflow._text import printable
from agentflow.errors import HumanOnlyEventError, UsageError
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

#: Event types only a person may send, unless the operator adds more.
DEFAULT_HUMAN_ONLY: frozenset[str] = frozenset({"approval"})


class ApprovalRequest(BaseModel):
    """What a person is asked to decide: everything is read from the store, not taken
    from the agent, except ``note``, which is shown as the agent's words."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    instance_id: str
    plan: str
    version: str
    type: str
    step: str
    deadline: datetime
    #: Names this very wait of this run; it changes when the instance is restarted,
    #: paused, resumed or woken, so an answer given to an older question is stale.
    ref: str = ""
    note: str = ""

    def message(self) -> str:
        """The text shown to the person (deterministic: a client may show it twice)."""
        text = (f"Agent {self.agent_id!r} asks you to decide on instance "
                f"{self.instance_id!r} of plan {self.plan!r} (version {self.version}). "
                f"It waits at step {self.step!r} for event {self.type!r} until "
                f"{self.deadline.isoformat(timespec='seconds')}"
                f"{f' (request {self.ref})' if self.ref else ''}.")
        if self.note:
            text += ("\n\nThe agent's note (its own words, not verified):\n"
                     + quoted(self.note))
        return text + "\n\nApprove or reject. Closing this leaves the instance waiting."


def quoted(note: str) -> str:
    """The agent's note as the person sees it: every line behind "> " (so none passes
    for the dialog's own text), with control and bidi characters shown as escapes."""
    return "\n".join(f"> {printable(line)}" for line in note.splitlines() or [""])


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
        human_only: event types that ``send_event`` refuses and only ``approve`` (a
            person) delivers, compared case-insensitively. The operator's types are
            added to `DEFAULT_HUMAN_ONLY`, never put in its place: ``approval`` always
            stays a person's to send.
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


def is_human_only(event_type: str, human_only: Iterable[str]) -> bool:
    """Whether ``event_type`` is one of ``human_only``, ignoring case (so that
    ``Approval`` is not a way around ``approval``)."""
    folded = event_type.casefold()
    return any(folded == t.casefold() for t in human_only)
