"""The tools' typed arguments and structured results: the one schema every front end uses.

The MCP server publishes these as input and output schemas; the OpenAI and Anthropic
adapters turn the same models into their tool definitions. Field descriptions are what a
model reads to fill an argument, so they say what to pass and what happens, not only
what the field is.

Every result carries ``summary``: one or two plain sentences that say what happened and
what to do next. It is also the text a client shows when it ignores structured output.

The module is over 400 lines on purpose: it is the whole tool contract, each tool's
arguments and result beside the others, mostly field descriptions written for a model
to read. Split by subject it would hide what the tools share (`InstanceInfo`, the id
pattern, the bases) from whoever reads one tool's schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentflow._text import printable
from agentflow.models import AttemptRecord, StatusName, WaitingOn

__all__ = [
    "EVENT_TYPE_PATTERN",
    "INSTANCE_ID_PATTERN",
    "MAX_SOURCE_CHARS",
    "PLAN_NAME_PATTERN",
    "ApproveArgs",
    "ApproveResult",
    "CapabilityInfo",
    "DescribeCapabilitiesArgs",
    "DescribeCapabilitiesResult",
    "DiagnosticInfo",
    "FailedAttempt",
    "GetHistoryArgs",
    "GetHistoryResult",
    "GetInstanceArgs",
    "GetInstanceResult",
    "HumanDecision",
    "InstanceInfo",
    "ListInstancesArgs",
    "ListInstancesResult",
    "ListPendingEventsArgs",
    "ListPendingEventsResult",
    "ListPlansArgs",
    "ListPlansResult",
    "PauseInstanceArgs",
    "PauseInstanceResult",
    "PendingEventInfo",
    "PlanInfo",
    "RestartInfo",
    "RestartInstanceArgs",
    "RestartInstanceResult",
    "ResumeInstanceArgs",
    "ResumeInstanceResult",
    "SendEventArgs",
    "SendEventResult",
    "StartInstanceArgs",
    "StartInstanceResult",
    "StepInfo",
    "SubmitPlanArgs",
    "SubmitPlanResult",
    "TerminateInstanceArgs",
    "TerminateInstanceResult",
    "ToolArgs",
    "ToolResult",
    "ValidatePlanArgs",
    "ValidatePlanResult",
    "WaitForInstanceArgs",
    "WaitForInstanceResult",
]

#: The largest source the tools accept at all. The validator's own limit is lower and
#: answers with diagnostic AF002; this cap only keeps absurd inputs out of memory.
MAX_SOURCE_CHARS = 1_000_000
PLAN_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"
EVENT_TYPE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$"


# --- building blocks --------------------------------------------------------------------

class ToolArgs(BaseModel):
    """Base of every tool's arguments: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ToolResult(BaseModel):
    """Base of every tool's result.

    The summary is text a model reads and a client may show a person: each of its lines
    has every character that could hide, restyle or reorder text (a plan's printed
    U+202E, an ANSI escape) written as an escape, here, so the text block and the
    structured result say the same.
    """

    summary: str = Field(description="What happened and what to do next, in plain words.")

    @field_validator("summary")
    @classmethod
    def _shown_safely(cls, summary: str) -> str:
        return "\n".join(printable(line) for line in summary.split("\n"))


def _instance_id(what: str = "The instance id") -> Any:
    return Field(description=f"{what} (as returned by start_instance or list_instances).",
                 pattern=INSTANCE_ID_PATTERN)


def _plan_name(what: str) -> Any:
    return Field(description=what, pattern=PLAN_NAME_PATTERN)


class DiagnosticInfo(BaseModel):
    """One problem the validator found in a plan."""

    line: int = Field(description="1-based line of the problem.")
    col: int = Field(description="1-based column.")
    code: str = Field(description="Stable code, e.g. AF301 (see agentflow://docs/plan-api).")
    message: str = Field(description="What is wrong.")
    hint: str = Field(description="How to fix it.")


class PlanInfo(BaseModel):
    """A stored, immutable plan version."""

    name: str
    version: str = Field(description="Content hash of the source; new instances use the "
                                     "current version, running ones keep theirs.")
    created_at: datetime
    current: bool = Field(description="Whether new instances start on this version.")


class InstanceInfo(BaseModel):
    """A snapshot of one instance of a plan."""

    id: str
    plan: str
    version: str = Field(description="The plan version this instance runs.")
    status: StatusName
    output: Any = Field(None, description="The return value of run(), once complete.")
    error: dict[str, Any] | None = Field(
        None, description="Once errored: {name, message}, and for a plan error the step "
                          "(null outside any step), after_step, at (where in the run, in "
                          "words) and where: {line, function, source, traceback}.")
    waiting_on: WaitingOn | None = Field(
        None, description="When status is waiting: a sleep, an event type or a retry, "
                          "with the step name and the time it ends.")
    waits: list[WaitingOn] = Field(
        [], description="Every wait it is parked on, earliest first (several under "
                        "gather); waiting_on is the first.")
    note: str | None = Field(
        None, description="What the status alone does not say, e.g. that the process "
                          "running it stopped renewing its claim.")
    created_at: datetime
    updated_at: datetime


class PendingEventInfo(BaseModel):
    """An instance that waits for an event."""

    instance_id: str
    plan: str
    type: str = Field(description="The event type it waits for.")
    step: str = Field(description="The name of the wait_for_event step.")
    deadline: datetime = Field(description="When the wait times out.")
    human_only: bool = Field(description="Only a person may answer: use approve, not "
                                         "send_event.")


class StepInfo(BaseModel):
    """One entry of an instance's journal."""

    seq: int
    name: str
    n: int = Field(description="Counts calls with the same name in one run, from 1.")
    kind: str = Field(description="do, sleep, event, now, random or uuid; log: what the "
                                  "plan printed after its last step.")
    status: str = Field(description="ok, error, retrying or waiting.")
    attempts: int
    result: Any = None
    result_truncated: bool = Field(False, description="The result was too long and is "
                                                      "shown as a shortened JSON string.")
    error: dict[str, Any] | None = None
    started_at: datetime
    finished_at: datetime | None = None
    wake_at: datetime | None = None
    logs: list[str] = Field([], description="What the plan printed before this step.")
    attempt_history: list[AttemptRecord] = Field(
        [], description="Each attempt's time, error (failed ones are kept after a retry "
                        "succeeds) and printed lines.")


class FailedAttempt(BaseModel):
    """A step attempt that failed (it may have been retried since)."""

    step: str
    attempt: int
    at: datetime
    error: dict[str, Any]


class HumanDecision(BaseModel):
    """What a person answers to an approval request (the elicitation form): an explicit
    choice, not a checkbox whose unset state differs from client to client. Strict:
    anything but ``"approve"`` or ``"reject"`` is refused, and nothing is sent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["approve", "reject"] = Field(
        title="Decision", description="approve: the plan goes on. reject: the plan is "
                                      "told no.")
    comment: str = Field("", title="Comment", max_length=2000,
                         description="Optional; the plan receives it with the decision.")

    @property
    def approved(self) -> bool:
        return self.decision == "approve"


# --- plans ------------------------------------------------------------------------------

class ValidatePlanArgs(ToolArgs):
    source: str = Field(description="The full plan source: a Python module that defines "
                                    "`async def run(event, step):`.",
                        max_length=MAX_SOURCE_CHARS)


class ValidatePlanResult(ToolResult):
    ok: bool = Field(description="True when the plan can be submitted as it is.")
    diagnostics: list[DiagnosticInfo] = Field(
        description="Every problem found, with line, column, code and a fix hint.")


class SubmitPlanArgs(ToolArgs):
    name: str = _plan_name("The plan's name: 1-100 letters, digits, '_', '.', '-'. "
                           "Submitting the same name again makes a new current version.")
    source: str = Field(description="The full plan source (validated first; nothing is "
                                    "stored when it is invalid).",
                        max_length=MAX_SOURCE_CHARS)


class SubmitPlanResult(ToolResult):
    ok: bool = Field(description="True when the plan was stored.")
    plan: PlanInfo | None = Field(None, description="The stored version, when ok.")
    diagnostics: list[DiagnosticInfo] = Field(
        description="Why it was rejected, when not ok: fix each and submit again.")


class ListPlansArgs(ToolArgs):
    name: str | None = Field(None, pattern=PLAN_NAME_PATTERN,
                             description="Give a name to list every version of that plan; "
                                         "omit it to list the current version of each plan.")


class ListPlansResult(ToolResult):
    plans: list[PlanInfo]


# --- instances --------------------------------------------------------------------------

class StartInstanceArgs(ToolArgs):
    plan: str = _plan_name("The name of a submitted plan; the instance runs its current "
                           "version and stays on it.")
    params: dict[str, Any] | None = Field(
        None, description="A JSON object the plan reads as event.payload (at most 1 MiB). "
                          "Omit it for an empty object.")
    id: str | None = Field(None, pattern=INSTANCE_ID_PATTERN,
                           description="Optional instance id (1-100 letters, digits, '_', "
                                       "'-'); one is generated when omitted.")


class StartInstanceResult(ToolResult):
    instance: InstanceInfo


class GetInstanceArgs(ToolArgs):
    instance_id: str = _instance_id()


class GetInstanceResult(ToolResult):
    instance: InstanceInfo
    logs: list[str] = Field([], description="The last lines the plan printed, each "
                                            "marked with its step.")
    failed_attempts: list[FailedAttempt] = Field(
        [], description="The last failed step attempts, also those retried since.")


class DescribeCapabilitiesArgs(ToolArgs):
    pass


class CapabilityInfo(BaseModel):
    """A capability granted to you: how a plan calls it, and its limits."""

    name: str
    methods: list[str]
    calls: dict[str, Any] = Field({}, description="method -> {call, does}.")
    limits: dict[str, Any] = Field({}, description="Hosts, sizes, models and the like.")


class DescribeCapabilitiesResult(ToolResult):
    capabilities: list[CapabilityInfo]


class ListInstancesArgs(ToolArgs):
    status: list[StatusName] | None = Field(
        None, description="Only instances with one of these statuses; omit for all.")
    limit: int = Field(20, ge=1, le=100, description="At most this many, newest first.")
    offset: int = Field(0, ge=0, le=1_000_000, description="Skip this many (for paging).")


class ListInstancesResult(ToolResult):
    instances: list[InstanceInfo]
    has_more: bool = Field(description="More instances follow: call again with a larger "
                                       "offset.")


class WaitForInstanceArgs(ToolArgs):
    instance_id: str = _instance_id()
    timeout_seconds: float = Field(
        30.0, ge=0, le=50,
        description="Wait at most this long (0 to 50 seconds) for the instance to finish, "
                    "pause, or start waiting on a sleep, an event or a retry.")


class WaitForInstanceResult(ToolResult):
    instance: InstanceInfo
    settled: bool = Field(description="False when the time ran out while it was still "
                                      "queued or running: call again or check later.")
    waited_seconds: float


class SendEventArgs(ToolArgs):
    instance_id: str = _instance_id()
    type: str = Field(pattern=EVENT_TYPE_PATTERN,
                      description="The event type the plan waits for with "
                                  "step.wait_for_event(..., type=...). Human-only types "
                                  "(such as approval) are refused: use approve.")
    payload: Any = Field(None, description="Any JSON value (at most 1 MiB); the plan "
                                           "receives it as result['payload'].")


class SendEventResult(ToolResult):
    instance_id: str
    type: str
    woke: bool = Field(description="True when the instance was waiting for this type and "
                                   "now runs on; false when the event was buffered until "
                                   "the plan waits for it.")
    instance: InstanceInfo


class ListPendingEventsArgs(ToolArgs):
    pass


class ListPendingEventsResult(ToolResult):
    pending: list[PendingEventInfo]


class ApproveArgs(ToolArgs):
    instance_id: str = _instance_id("The instance that waits for the approval")
    note: str = Field("", max_length=2000,
                      description="Optional context for the person who decides (what the "
                                  "plan will do once approved). Shown to them as written "
                                  "by you.")
    step: str | None = Field(None, max_length=256,
                             description="The wait step to ask about, when the instance "
                                         "waits for several approvals at once (a gather): "
                                         "list_pending_events shows each step. Required "
                                         "then; the decision reaches only that wait.")


class ApproveResult(ToolResult):
    instance_id: str
    type: str = Field(description="The human-only event type the instance waits for.")
    step: str = Field(description="The wait step that receives the decision.")
    outcome: Literal["approved", "rejected", "pending_human", "declined", "cancelled",
                     "stale"] = Field(
        description="approved/rejected: a person decided and the plan received "
                    "{approved, comment, by: 'human'}. pending_human: no person could be "
                    "asked here; the instance keeps waiting (see summary for how a person "
                    "answers). declined/cancelled: the person closed the request without "
                    "deciding; nothing was sent. stale: the instance changed while the "
                    "person was asked; nothing was sent, ask again.")
    delivered: bool = Field(description="Whether a decision was sent to the instance.")
    payload: dict[str, Any] | None = Field(None, description="The event payload sent, if "
                                                             "any.")
    instance: InstanceInfo


class _ControlArgs(ToolArgs):
    # The arguments of the plain controls (pause, resume, terminate). A subclass
    # without a docstring keeps the schema it had: pydantic does not inherit them.
    instance_id: str = _instance_id()


class _ControlResult(ToolResult):
    instance: InstanceInfo


class PauseInstanceArgs(_ControlArgs):
    pass


class PauseInstanceResult(_ControlResult):
    pass


class ResumeInstanceArgs(_ControlArgs):
    pass


class ResumeInstanceResult(_ControlResult):
    pass


class TerminateInstanceArgs(_ControlArgs):
    pass


class TerminateInstanceResult(_ControlResult):
    pass


class RestartInstanceArgs(ToolArgs):
    instance_id: str = _instance_id()
    from_step: str | None = Field(
        None, min_length=1, max_length=256,
        description="Keep the journal before the first step of this name and run again "
                    "from it; omit to run from the top. Steps before it are not repeated.")
    upgrade: bool = Field(False, description="Move the instance to its plan's current "
                                             "version first (after you submitted a fix).")


class RestartInstanceResult(ToolResult):
    instance: InstanceInfo
    previous_version: str = Field(description="The version it ran before the restart.")


class GetHistoryArgs(ToolArgs):
    instance_id: str = _instance_id()
    offset: int = Field(0, ge=0, le=10_000, description="Skip this many journal entries.")
    limit: int = Field(100, ge=1, le=500, description="At most this many entries.")


class RestartInfo(BaseModel):
    """One restart of an instance: who made it, when, and from where."""

    at: datetime
    by: str = Field(description="Who restarted: an operator, or an agent through a tool.")
    from_step: str | None = Field(None, description="The step it ran again from; None "
                                                    "from the top.")


class GetHistoryResult(ToolResult):
    instance: InstanceInfo
    steps: list[StepInfo] = Field(description="Journal entries in the order the run "
                                              "reached them.")
    total_steps: int
    has_more: bool
    restarts: list[RestartInfo] = Field(default_factory=list,
                                        description="Every restart, oldest first, with "
                                                    "who made it.")
