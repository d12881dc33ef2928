"""The tool registry: name, description, argument and result models, handler.

`TOOLS` is what every front end iterates: the MCP server registers each entry as an MCP
tool; the OpenAI and Anthropic adapters turn each into their API's tool definition.
`call_tool` runs one call from raw JSON arguments and never raises for bad input, so a
model sees its mistake as a tool result and can correct it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from agentflow._text import printable
from agentflow.errors import AgentflowError
from agentflow.plans import Agent
from agentflow.tools import _handlers as h
from agentflow.tools import _models as m
from agentflow.tools import _schedule_tools as st
from agentflow.tools._context import ToolContext

__all__ = ["TOOLS", "ToolOutcome", "ToolSpec", "call_tool", "format_validation_error"]

ArgsT = TypeVar("ArgsT", bound=m.ToolArgs)
ResultT = TypeVar("ResultT", bound=m.ToolResult)
Handler = Callable[[Agent, ArgsT, ToolContext | None], Awaitable[ResultT]]


@dataclass(frozen=True)
class ToolSpec(Generic[ArgsT, ResultT]):
    """One tool, independent of any protocol.

    Attributes:
        name: the tool's name (snake_case, stable: clients and prompts use it).
        description: what the tool does and when to use it, written for a model.
        args_model: the pydantic model of its arguments (its JSON schema is the input
            schema).
        result_model: the pydantic model of its structured result.
        handler: ``async (agent, args, context=None) -> result``.
        read_only: it changes nothing (MCP readOnlyHint).
        destructive: it may throw work away (MCP destructiveHint).
    """

    name: str
    description: str
    args_model: type[ArgsT]
    result_model: type[ResultT]
    handler: Handler[ArgsT, ResultT]
    read_only: bool = False
    destructive: bool = False


def _spec(name: str, description: str, args_model: type[ArgsT], result_model: type[ResultT],
          handler: Handler[ArgsT, ResultT], *, read_only: bool = False,
          destructive: bool = False) -> ToolSpec[Any, Any]:
    return ToolSpec(name, " ".join(description.split()), args_model, result_model, handler,
                    read_only, destructive)


TOOLS: dict[str, ToolSpec[Any, Any]] = {spec.name: spec for spec in [
    _spec("validate_plan", """
        Check the source of a durable plan (a Python module defining `async def run(event,
        step)`) without storing it. Returns ok, or diagnostics with line, column, code and
        a fix hint for each problem. Use it before submit_plan; the rules are in the
        resource agentflow://docs/plan-api.""",
          m.ValidatePlanArgs, m.ValidatePlanResult, h.handle_validate_plan, read_only=True),
    _spec("submit_plan", """
        Validate a plan and store it as a new immutable version under a name; it becomes
        the current version that new instances run (running instances keep theirs). An
        invalid plan is not stored: the result has ok=false and the diagnostics to fix.""",
          m.SubmitPlanArgs, m.SubmitPlanResult, h.handle_submit_plan),
    _spec("list_plans", """
        List your plans with their current versions, or every version of one plan when
        you give its name. The source of a plan is the resource
        agentflow://plans/{name}.""",
          m.ListPlansArgs, m.ListPlansResult, h.handle_list_plans, read_only=True),
    _spec("start_instance", """
        Start a durable instance of a submitted plan with params (a JSON object the plan
        reads as event.payload). It returns at once with the instance id; the engine runs
        it in the background, across restarts, sleeps and waits. Follow it with
        wait_for_instance or get_instance.""",
          m.StartInstanceArgs, m.StartInstanceResult, h.handle_start_instance),
    _spec("get_instance", """
        Get one instance: status (queued, running, waiting, paused, waiting_for_pause,
        complete, errored, terminated), output or error, and what a waiting instance waits
        on (a sleep, an event type, a retry) until when.""",
          m.GetInstanceArgs, m.GetInstanceResult, h.handle_get_instance, read_only=True),
    _spec("list_instances", """
        List your instances, newest first, optionally only those with some statuses.""",
          m.ListInstancesArgs, m.ListInstancesResult, h.handle_list_instances,
          read_only=True),
    _spec("wait_for_instance", """
        Wait up to timeout_seconds (at most 50) until an instance completes, errors, is
        paused, or waits on a sleep, an event or a retry; then return its status. Sends
        progress notifications while it waits. settled=false means it was still busy:
        call again.""",
          m.WaitForInstanceArgs, m.WaitForInstanceResult, h.handle_wait_for_instance,
          read_only=True),
    _spec("send_event", """
        Send an event (a type and a JSON payload) to an instance: it wakes a
        step.wait_for_event of that type, or is buffered until the plan waits for it.
        Human-only types (approval, and any the operator added) are refused: use approve,
        which asks a person.""",
          m.SendEventArgs, m.SendEventResult, h.handle_send_event),
    _spec("list_pending_events", """
        List your instances that wait for an event, with the event type, the step and the
        deadline; human_only marks the ones only a person may answer (use approve).""",
          m.ListPendingEventsArgs, m.ListPendingEventsResult, h.handle_list_pending_events,
          read_only=True),
    _spec("approve", """
        Ask a person to approve or reject an instance that waits for a human-only event
        (such as approval). Where the client can ask its user, the person decides and the
        plan receives {approved, comment, by: 'human'}; you cannot decide for them.
        Otherwise nothing is sent, the instance keeps waiting, and the result says how a
        person answers.""",
          m.ApproveArgs, m.ApproveResult, h.handle_approve),
    _spec("pause_instance", """
        Pause an instance. A waiting or queued one pauses at once; a running one after its
        current step (waiting_for_pause until then). resume_instance continues it.""",
          m.PauseInstanceArgs, m.PauseInstanceResult, h.handle_pause_instance),
    _spec("resume_instance", """
        Resume a paused instance; it replays its journal and goes on where it stopped.""",
          m.ResumeInstanceArgs, m.ResumeInstanceResult, h.handle_resume_instance),
    _spec("terminate_instance", """
        Stop an instance for good. Nothing more of its run is recorded;
        restart_instance can run it again.""",
          m.TerminateInstanceArgs, m.TerminateInstanceResult, h.handle_terminate_instance,
          destructive=True),
    _spec("restart_instance", """
        Run an instance again with the same params: from the top, or from_step (earlier
        steps keep their results and do not run again). upgrade=true moves it to its
        plan's current version first, e.g. after you submitted a fix for an error. A
        person's approval is not kept for a new version: upgrade from a step after one
        is refused.""",
          m.RestartInstanceArgs, m.RestartInstanceResult, h.handle_restart_instance,
          destructive=True),
    _spec("describe_capabilities", """
        List what your plans' `env` holds: each granted capability, how a plan calls its
        methods, and its limits (hosts, sizes).""",
          m.DescribeCapabilitiesArgs, m.DescribeCapabilitiesResult,
          h.handle_describe_capabilities, read_only=True),
    _spec("get_history", """
        Read an instance's journal: each step it reached in order, with kind, status,
        attempts, result or error and times. Use it to see why an instance errored or
        what it is waiting on.""",
          m.GetHistoryArgs, m.GetHistoryResult, h.handle_get_history, read_only=True),
    _spec("schedule_plan", """
        Start one of your plans on a schedule: a cron expression (five fields, in a time
        zone) or an interval, optionally between a start and an end, with params. Each
        fire starts exactly one instance of the plan's current version. overlap says what
        a fire does while the previous instance still runs; catchup what happens to fires
        missed while nothing ran.""",
          st.SchedulePlanArgs, st.ScheduleResult, st.handle_schedule_plan),
    _spec("list_schedules", """
        List your schedules with their next fire times and the last instance each
        started.""",
          st.ListSchedulesArgs, st.ListSchedulesResult, st.handle_list_schedules,
          read_only=True),
    _spec("pause_schedule", """
        Pause a schedule: it fires no more until resume_schedule (missed fires are not
        caught up).""",
          st.PauseScheduleArgs, st.ScheduleResult, st.handle_pause_schedule),
    _spec("resume_schedule", """
        Resume a paused schedule from its next fire time after now.""",
          st.ResumeScheduleArgs, st.ScheduleResult, st.handle_resume_schedule),
    _spec("delete_schedule", """
        Delete a schedule. The instances it started are kept.""",
          st.DeleteScheduleArgs, st.DeleteScheduleResult, st.handle_delete_schedule,
          destructive=True),
]}


@dataclass(frozen=True)
class ToolOutcome:
    """The outcome of `call_tool`: a result, or an error message for the model.

    Attributes:
        tool: the tool's name.
        result: the structured result, or None on error.
        error: what went wrong and what to do instead, or None on success.
    """

    tool: str
    result: m.ToolResult | None = None
    error: str | None = None

    @property
    def is_error(self) -> bool:
        return self.error is not None

    @property
    def text(self) -> str:
        """The plain text a model reads (and a client may show a person): the summary,
        or the error, with every character that could hide, restyle or reorder text
        (a plan's print of U+202E, an ANSI escape) written as an escape."""
        if self.result is not None:
            return self.result.summary  # escaped by the model (`ToolResult`)
        return "\n".join(printable(line) for line in f"Error: {self.error}".split("\n"))


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """Bad tool arguments in the one form every front end (MCP, the adapters) uses: what
    is wrong with each field, then the fields the tool accepts.

    Example: ``invalid arguments for get_instance: instance_idd: not an argument of
    get_instance; instance_id: missing (required). Accepted fields: instance_id
    (string, required).``
    """
    problems = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(f"{where}: not an argument of {tool}")
        elif kind == "missing":
            problems.append(f"{where}: missing (required)")
        else:
            problems.append(f"{where}: {err['msg']}")
    text = f"invalid arguments for {tool}: " + "; ".join(problems)
    spec = TOOLS.get(tool)
    if spec is not None:
        text += f". Accepted fields: {accepted_fields(spec.args_model)}."
    return text


def accepted_fields(model: type[m.ToolArgs]) -> str:
    """``name (type, required), ...`` for a tool's argument model."""
    properties = model.model_json_schema().get("properties", {})
    parts = []
    for name, info in model.model_fields.items():
        prop = properties.get(name, {})
        kind = prop.get("type") or "/".join(
            str(p.get("type")) for p in prop.get("anyOf", []) if p.get("type") not in
            (None, "null")) or "any"
        parts.append(f"{name} ({kind}, {'required' if info.is_required() else 'optional'})")
    return ", ".join(parts) or "none"


async def call_tool(agent: Agent, name: str, arguments: Mapping[str, Any] | str | None,
                    context: ToolContext | None = None) -> ToolOutcome:
    """Run one tool call for ``agent`` from raw arguments (a dict, or JSON text).

    Bad input (unknown tool, malformed JSON, wrong types, unknown ids, invalid states)
    becomes ``ToolOutcome(error=...)``, and nothing is written. Unexpected failures
    (a broken database) propagate.

    Example:
        outcome = await call_tool(agent, "get_instance", '{"instance_id": "i-1"}')
        print(outcome.text)
    """
    spec = TOOLS.get(name)
    if spec is None:
        return ToolOutcome(name, error=f"unknown tool {name!r}; the tools are "
                                       f"{', '.join(TOOLS)}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return ToolOutcome(name, error=f"the arguments of {name} are not valid JSON: "
                                           f"{exc}")
        except RecursionError:
            return ToolOutcome(name, error=f"the arguments of {name} are nested too deeply")
    if arguments is not None and not isinstance(arguments, Mapping):
        return ToolOutcome(name, error=f"the arguments of {name} must be a JSON object")
    try:
        args = spec.args_model.model_validate(dict(arguments or {}))
    except ValidationError as exc:
        return ToolOutcome(name, error=format_validation_error(name, exc))
    except RecursionError:
        return ToolOutcome(name, error=f"the arguments of {name} are nested too deeply")
    try:
        result = await spec.handler(agent, args, context)
    except AgentflowError as exc:
        return ToolOutcome(name, error=str(exc))
    except sqlite3.OperationalError as exc:  # still locked after the store's retries
        return ToolOutcome(name, error=f"the database is unavailable ({exc}); nothing was "
                                       f"changed. Try {name} again in a little while.")
    return ToolOutcome(name, result=result)
