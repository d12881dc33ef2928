"""Bad input on every tool: a clear error result, and not one row of the store changes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from agentflow import AgentFlow
from agentflow.tools import TOOLS
from mcp_server import ServerConfig, build_server
from tests.mcp_server.conftest import APPROVAL_PLAN, REPLY_PLAN, connect, structured, text

HUGE = "x" * (1024 * 1024 + 10)  # over the 1 MiB limit of payloads and params

# tool -> [(arguments, a word the error must contain)]
BAD_CALLS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "validate_plan": [({"source": 5}, "source"), ({}, "source"),
                      ({"source": "x" * 1_000_001}, "source")],
    "submit_plan": [({"name": "bad name!", "source": REPLY_PLAN}, "name"),
                    ({"name": "p", "source": ["not", "text"]}, "source"),
                    ({"name": "n" * 101, "source": REPLY_PLAN}, "name"),
                    ({"name": "p", "source": "x" * 1_000_001}, "source")],
    "list_plans": [({"name": "nope"}, "no plan"), ({"name": 5}, "name")],
    "start_instance": [({"plan": "nope"}, "no plan"),
                       ({"plan": "reply", "params": [1, 2]}, "params"),
                       ({"plan": "reply", "params": {"blob": HUGE}}, "1 MiB"),
                       ({"plan": "reply", "id": "bad id!"}, "id"),
                       ({"plan": "reply", "id": "w"}, "already exists")],
    "get_instance": [({"instance_id": "nope"}, "no instance"),
                     ({"instance_id": "../etc"}, "instance_id"),
                     ({"instance_id": 5}, "instance_id")],
    "list_instances": [({"status": ["bogus"]}, "status"), ({"limit": 0}, "limit"),
                       ({"limit": 101}, "limit"), ({"offset": -1}, "offset")],
    "wait_for_instance": [({"instance_id": "nope"}, "no instance"),
                          ({"instance_id": "w", "timeout_seconds": -1}, "timeout_seconds"),
                          ({"instance_id": "w", "timeout_seconds": "soon"}, "timeout_seconds")],
    "send_event": [({"instance_id": "nope", "type": "reply"}, "no instance"),
                   ({"instance_id": "w", "type": "bad type!"}, "type"),
                   ({"instance_id": "w", "type": ""}, "type"),
                   ({"instance_id": "a", "type": "approval", "payload": True}, "human-only"),
                   ({"instance_id": "w", "type": "reply", "payload": HUGE}, "1 MiB"),
                   ({"instance_id": "done", "type": "reply"}, "complete")],
    "list_pending_events": [({"unexpected": 1}, "unexpected")],  # names none: extras too
    "describe_capabilities": [({"capability": "http"}, "capability")],
    "approve": [({"instance_id": "nope"}, "no instance"),
                ({"instance_id": "w"}, "does not wait for an approval"),
                ({"instance_id": "done"}, "complete"),
                ({"instance_id": "a", "note": "n" * 2001}, "note")],
    "pause_instance": [({"instance_id": "nope"}, "no instance"),
                       ({"instance_id": "done"}, "complete")],
    "resume_instance": [({"instance_id": "nope"}, "no instance"),
                        ({"instance_id": "done"}, "complete")],
    "terminate_instance": [({"instance_id": "nope"}, "no instance"),
                           ({"instance_id": "done"}, "complete")],
    "restart_instance": [({"instance_id": "nope"}, "no instance"),
                         ({"instance_id": "w", "from_step": "no such step"}, "no step named"),
                         ({"instance_id": "w", "from_step": ""}, "from_step"),
                         ({"instance_id": "w", "upgrade": [1]}, "upgrade")],
    "get_history": [({"instance_id": "nope"}, "no instance"),
                    ({"instance_id": "w", "limit": 0}, "limit"),
                    ({"instance_id": "w", "offset": -1}, "offset")],
    "schedule_plan": [({"plan": "nope", "every": 60}, "no plan"),
                      ({"plan": "reply", "cron": "not a cron"}, "5 fields"),
                      ({"plan": "reply", "every": "1 hour", "extra": 1}, "extra"),
                      ({"plan": "reply"}, "cron="),  # neither cron nor every
                      ({"plan": "reply", "cron": "0 0 * * *", "every": 60}, "not both"),
                      ({"plan": "reply", "cron": "61 * * * *"}, "out of range"),
                      ({"plan": "reply", "cron": "0 0 30 2 *"}, "never fires"),
                      ({"plan": "reply", "every": "0.5 seconds"}, "1 second"),
                      ({"plan": "reply", "every": 60, "timezone": "Mars/Base"}, "time zone"),
                      ({"plan": "reply", "every": 60, "start": "soon"}, "ISO 8601"),
                      ({"plan": "reply", "every": 60, "overlap": "queue"}, "overlap"),
                      ({"plan": "reply", "every": 60, "name": "bad name!"}, "name"),
                      ({"plan": "reply", "every": 60, "params": {"blob": HUGE}}, "1 MiB")],
    "list_schedules": [({"plan": "reply"}, "plan"), ({"x": 1}, "not an argument")],
    "pause_schedule": [({"name": "nope"}, "no schedule"), ({"name": "bad name!"}, "name"),
                       ({}, "name")],
    "resume_schedule": [({"name": "nope"}, "no schedule")],
    "delete_schedule": [({"name": "nope"}, "no schedule")],
}


def snapshot(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


async def test_bad_input_on_every_tool_changes_nothing(tmp_path: Path) -> None:
    assert set(BAD_CALLS) == set(TOOLS)
    db = tmp_path / "bad.db"
    async with AgentFlow(f"sqlite:///{db}", isolation="inline") as af:
        server = build_server(af, ServerConfig(agent_id="alice"))
        async with connect(server) as c:
            await c.call_tool("submit_plan", {"name": "reply", "source": REPLY_PLAN})
            await c.call_tool("submit_plan", {"name": "approval", "source": APPROVAL_PLAN})
            for plan, instance in (("reply", "w"), ("approval", "a"), ("reply", "done")):
                await c.call_tool("start_instance", {"plan": plan, "id": instance})
                await c.call_tool("wait_for_instance", {"instance_id": instance})
            await c.call_tool("send_event", {"instance_id": "done", "type": "reply"})
            done = structured(await c.call_tool("wait_for_instance", {"instance_id": "done"}))
            assert done["instance"]["status"] == "complete"
            before = snapshot(db)

            for tool, calls in BAD_CALLS.items():
                for arguments, word in calls:
                    result = await c.call_tool(tool, arguments)
                    if not result.is_error:
                        raise AssertionError(f"{tool}({str(arguments)[:80]}) did not fail: "
                                             f"{text(result)[:200]}")
                    message = text(result)
                    assert word.lower() in message.lower(), (tool, arguments, message)
                    assert len(message) < 2000 and "Traceback" not in message, message

            # Invalid plans are answers, not errors, and are not stored either.
            too_big = structured(await c.call_tool("submit_plan", {
                "name": "big", "source": "# " + "x" * 200_000}))
            assert not too_big["ok"] and too_big["diagnostics"][0]["code"] == "AF002"
            assert snapshot(db) == before


async def test_bad_arguments_read_the_same_over_mcp_and_the_adapters(tmp_path: Path) -> None:
    """One format everywhere: each bad field, then the fields the tool accepts; never
    pydantic's raw text (``[type=extra_forbidden ...]``, links to errors.pydantic.dev)."""
    from agentflow.tools import call_tool

    calls = [("restart_instance", {"instance_id": "w", "fromStep": "reply"}),
             ("get_instance", {"id": "w"}),
             ("wait_for_instance", {"instance_id": "w", "timeout_seconds": "soon"}),
             ("list_pending_events", {"unexpected": 1})]
    async with AgentFlow(f"sqlite:///{tmp_path}/f.db", isolation="inline") as af:
        server = build_server(af, ServerConfig(agent_id="alice"))
        async with connect(server) as c:
            for tool, arguments in calls:
                over_mcp = text(await c.call_tool(tool, arguments))
                adapter = (await call_tool(af.agent("alice"), tool, arguments)).text
                assert over_mcp == adapter, (over_mcp, adapter)
                assert over_mcp.startswith(f"Error: invalid arguments for {tool}: ")
                assert "Accepted fields: " in over_mcp
                assert "pydantic" not in over_mcp and "[type=" not in over_mcp
    assert "fromStep: not an argument of restart_instance" in text_of(calls[0], af)


def text_of(call: tuple[str, dict[str, Any]], af: AgentFlow) -> str:
    from pydantic import ValidationError

    from agentflow.tools import format_validation_error

    tool, arguments = call
    try:
        TOOLS[tool].args_model.model_validate(arguments)
    except ValidationError as exc:
        return format_validation_error(tool, exc)
    raise AssertionError("the arguments validated")
