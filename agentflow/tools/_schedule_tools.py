"""The schedule tools' arguments, results and handlers: an agent schedules its own plans.

Registered in `agentflow.tools.TOOLS` like every other tool, so the MCP server, the
OpenAI and Anthropic adapters and pydantic-ai all offer them with the same schema. An
agent sees and changes its own schedules only (`Agent.schedules`); the instances a
schedule starts are the agent's, and any quota on an agent's instances applies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentflow import Schedule
from agentflow.plans import Agent
from agentflow.tools._context import ToolContext
from agentflow.tools._models import PLAN_NAME_PATTERN, ToolArgs, ToolResult

__all__ = [
    "DeleteScheduleArgs",
    "DeleteScheduleResult",
    "ListSchedulesArgs",
    "ListSchedulesResult",
    "PauseScheduleArgs",
    "ResumeScheduleArgs",
    "ScheduleInfo",
    "SchedulePlanArgs",
    "ScheduleResult",
    "handle_delete_schedule",
    "handle_list_schedules",
    "handle_pause_schedule",
    "handle_resume_schedule",
    "handle_schedule_plan",
]

SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"


class ScheduleInfo(BaseModel):
    """One of your schedules."""

    name: str
    plan: str
    cron: str | None = None
    every_seconds: float | None = None
    timezone: str
    start: datetime | None = None
    end: datetime | None = None
    params: Any = None
    overlap: str
    catchup: str
    paused: bool
    next_fires: list[datetime] = Field(description="The next fire times (UTC), soonest "
                                                   "first; empty when it ended or is paused.")
    last_instance_id: str | None = None
    skipped_fires: int = Field(0, description="Fires that could not start an instance "
                                              "(your instance quota, or the plan is gone).")
    last_error: str | None = Field(None, description="Why the last skipped fire could not "
                                                     "start.")
    last_error_at: datetime | None = None


class SchedulePlanArgs(ToolArgs):
    plan: str = Field(description="The name of a submitted plan; each fire starts its "
                                  "current version.", pattern=PLAN_NAME_PATTERN)
    name: str | None = Field(None, pattern=SCHEDULE_NAME_PATTERN,
                             description="The schedule's name (default: the plan's); "
                                         "unique among your schedules.")
    cron: str | None = Field(None, description="Five cron fields 'minute hour day-of-month "
                                               "month day-of-week', e.g. '0 7 * * mon-fri' "
                                               "(07:00 on weekdays). Give cron or every.")
    every: str | float | None = Field(None, description="An interval instead of cron: "
                                                        "seconds, or text like '15 minutes' "
                                                        "(at least 1 second).")
    timezone: str = Field("UTC", description="IANA time zone of cron and of start/end "
                                             "without an offset, e.g. 'Europe/Berlin'.")
    start: str | None = Field(None, description="ISO 8601 date-time: no fire before it.")
    end: str | None = Field(None, description="ISO 8601 date-time: no fire after it.")
    params: dict[str, Any] | None = Field(None, description="The params of every instance "
                                                            "it starts (event.payload).")
    overlap: Literal["skip", "buffer_one", "allow"] = Field(
        "skip", description="While the previous fire's instance still runs: skip the "
                            "fire, buffer one to start when it ends, or allow both.")
    catchup: Literal["latest", "all", "none"] = Field(
        "latest", description="Fires missed while nothing ran: start one for the latest, "
                              "one for each, or none.")
    replace: bool = Field(False, description="Replace a schedule of that name.")


class ScheduleResult(ToolResult):
    schedule: ScheduleInfo


class ListSchedulesArgs(ToolArgs):
    pass


class ListSchedulesResult(ToolResult):
    schedules: list[ScheduleInfo]


class _NamedArgs(ToolArgs):
    name: str = Field(description="The schedule's name (see list_schedules).",
                      pattern=SCHEDULE_NAME_PATTERN)


class PauseScheduleArgs(_NamedArgs):
    pass


class ResumeScheduleArgs(_NamedArgs):
    pass


class DeleteScheduleArgs(_NamedArgs):
    pass


class DeleteScheduleResult(ToolResult):
    name: str


async def _info(agent: Agent, s: Schedule) -> ScheduleInfo:
    upcoming = [] if s.paused else await agent.schedules.next_fire_times(s.name, 3)
    return ScheduleInfo(name=s.name, plan=s.plan or "", cron=s.cron, every_seconds=s.every,
                        timezone=s.timezone, start=s.start, end=s.end, params=s.params,
                        overlap=s.overlap, catchup=s.catchup, paused=s.paused,
                        next_fires=upcoming, last_instance_id=s.last_instance_id,
                        skipped_fires=s.skipped_fires, last_error=s.last_error,
                        last_error_at=s.last_error_at)


def _when(info: ScheduleInfo) -> str:
    if info.paused:
        text = "it is paused; resume_schedule continues it"
    elif not info.next_fires:
        text = "it has no fire left (its end has passed)"
    else:
        text = f"next fire {info.next_fires[0].isoformat().replace('+00:00', 'Z')}"
    if info.skipped_fires:
        text += (f"; {info.skipped_fires} fire{'s' * (info.skipped_fires != 1)} could not "
                 f"start, the last because {info.last_error}")
    return text


async def handle_schedule_plan(agent: Agent, args: SchedulePlanArgs,
                               context: ToolContext | None = None) -> ScheduleResult:
    """Schedule one of the agent's plans."""
    s = await agent.schedules.create(
        args.plan, name=args.name, cron=args.cron, every=args.every, timezone=args.timezone,
        start=args.start, end=args.end, params=args.params, overlap=args.overlap,
        catchup=args.catchup, replace=args.replace)
    info = await _info(agent, s)
    return ScheduleResult(schedule=info, summary=(
        f"Schedule {info.name!r} starts plan {info.plan!r}; {_when(info)}. Each fire "
        "starts one instance (list_instances shows them)."))


async def handle_list_schedules(agent: Agent, args: ListSchedulesArgs,
                                context: ToolContext | None = None) -> ListSchedulesResult:
    infos = [await _info(agent, s) for s in await agent.schedules.list()]
    summary = ("You have no schedules; schedule_plan makes one." if not infos else
               "; ".join(f"{i.name!r} ({_when(i)})" for i in infos) + ".")
    return ListSchedulesResult(schedules=infos, summary=summary)


async def handle_pause_schedule(agent: Agent, args: PauseScheduleArgs,
                                context: ToolContext | None = None) -> ScheduleResult:
    info = await _info(agent, await agent.schedules.pause(args.name))
    return ScheduleResult(schedule=info, summary=f"Schedule {info.name!r} is paused; fires "
                                                 "while paused are not caught up.")


async def handle_resume_schedule(agent: Agent, args: ResumeScheduleArgs,
                                 context: ToolContext | None = None) -> ScheduleResult:
    info = await _info(agent, await agent.schedules.resume(args.name))
    return ScheduleResult(schedule=info, summary=f"Schedule {info.name!r} resumed; "
                                                 f"{_when(info)}.")


async def handle_delete_schedule(agent: Agent, args: DeleteScheduleArgs,
                                 context: ToolContext | None = None) -> DeleteScheduleResult:
    await agent.schedules.delete(args.name)
    return DeleteScheduleResult(name=args.name, summary=(
        f"Schedule {args.name!r} is deleted; the instances it started are kept."))
