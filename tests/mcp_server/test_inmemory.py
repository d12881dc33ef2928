"""The server with the SDK's own client in memory, on both protocol versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from agentflow import AgentFlow
from agentflow.policy import OperatorPolicy
from agentflow.testing import ManualClock
from agentflow.tools import TOOLS
from mcp_server import ServerConfig, build_server
from tests.conftest import eventually
from tests.mcp_server.conftest import (
    APPROVAL_PLAN,
    BAD_PLAN,
    REPLY_PLAN,
    connect,
    elicitation,
    structured,
    text,
)

MODES = ["auto", "legacy"]


@pytest.mark.parametrize("mode", MODES)
async def test_protocol_versions_and_schemas(server: Any, mode: str) -> None:
    async with connect(server, mode) as c:
        assert c.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert list(tools) == list(TOOLS)
    for name, spec in TOOLS.items():
        schema = spec.args_model.model_json_schema()
        # The published input schema is the shared argument model's, field for field.
        assert tools[name].input_schema["properties"] == schema.get("properties", {}), name
        assert tools[name].input_schema.get("required", []) == schema.get("required", []), name
        assert tools[name].output_schema is not None, name
        assert tools[name].output_schema["properties"] == (
            spec.result_model.model_json_schema()["properties"]), name
        assert tools[name].description == spec.description
    assert tools["get_instance"].annotations.read_only_hint is True
    assert tools["terminate_instance"].annotations.destructive_hint is True
    # Resolver-filled parameters are not arguments a model could pass.
    assert set(tools["approve"].input_schema["properties"]) == {"instance_id", "note", "step"}


@pytest.mark.parametrize("mode", MODES)
async def test_author_run_and_approve_through_elicitation(server: Any, mode: str) -> None:
    seen: list[str] = []
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    answer = elicitation("accept", {"decision": "approve", "comment": "ship it"}, seen)
    async with connect(server, mode, elicitation_callback=answer) as c:
        bad = structured(await c.call_tool("validate_plan", {"source": BAD_PLAN}))
        assert not bad["ok"]
        assert {d["code"] for d in bad["diagnostics"]} >= {"AF301", "AF201"}
        assert all(d["hint"] and d["line"] >= 1 for d in bad["diagnostics"])
        rejected = await c.call_tool("submit_plan", {"name": "sum", "source": BAD_PLAN})
        assert not rejected.is_error and not structured(rejected)["ok"]
        assert "Nothing was stored" in text(rejected)
        assert structured(await c.call_tool("list_plans", {}))["plans"] == []

        stored = structured(await c.call_tool("submit_plan", {"name": "sum",
                                                              "source": APPROVAL_PLAN}))
        assert stored["ok"] and stored["plan"]["current"]
        started = structured(await c.call_tool("start_instance", {
            "plan": "sum", "params": {"numbers": [1, 2, 3]}, "id": "sum-1"}))
        assert started["instance"]["id"] == "sum-1"
        waited = structured(await c.call_tool("wait_for_instance", {
            "instance_id": "sum-1", "timeout_seconds": 10}, progress_callback=on_progress))
        assert waited["settled"]
        assert waited["instance"]["waiting_on"]["type"] == "approval"
        [pending] = structured(await c.call_tool("list_pending_events", {}))["pending"]
        assert pending["human_only"] and pending["instance_id"] == "sum-1"

        refused = await c.call_tool("send_event", {"instance_id": "sum-1", "type": "approval",
                                                   "payload": {"approved": True}})
        assert refused.is_error and "human-only" in text(refused) and "approve" in text(refused)

        approved = structured(await c.call_tool("approve", {"instance_id": "sum-1",
                                                            "note": "sums three numbers"}))
        assert approved["outcome"] == "approved" and approved["delivered"]
        assert approved["payload"] == {"approved": True, "comment": "ship it", "by": "human"}
        [message] = seen
        assert "sum-1" in message and "sums three numbers" in message

        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "sum-1"}))
        assert done["instance"]["status"] == "complete"
        assert done["instance"]["output"] == {"status": "approved", "total": 6, "by": "human"}
        history = structured(await c.call_tool("get_history", {"instance_id": "sum-1"}))
        assert [(s["name"], s["status"]) for s in history["steps"]] == [
            ("compute", "ok"), ("approval", "ok")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("action", ["decline", "cancel"])
async def test_a_person_who_does_not_decide_leaves_the_instance_waiting(
        server: Any, mode: str, action: str) -> None:
    async with connect(server, mode, elicitation_callback=elicitation(action)) as c:
        await c.call_tool("submit_plan", {"name": "sum", "source": APPROVAL_PLAN})
        await c.call_tool("start_instance", {"plan": "sum", "id": "s"})
        await c.call_tool("wait_for_instance", {"instance_id": "s"})
        result = structured(await c.call_tool("approve", {"instance_id": "s"}))
        assert result["outcome"] == ("cancelled" if action == "cancel" else "declined")
        assert not result["delivered"] and result["payload"] is None
        assert result["instance"]["status"] == "waiting"


@pytest.mark.parametrize("mode", MODES)
async def test_a_person_may_reject(server: Any, mode: str) -> None:
    answer = elicitation("accept", {"decision": "reject", "comment": "not now"})
    async with connect(server, mode, elicitation_callback=answer) as c:
        await c.call_tool("submit_plan", {"name": "sum", "source": APPROVAL_PLAN})
        await c.call_tool("start_instance", {"plan": "sum", "id": "s"})
        await c.call_tool("wait_for_instance", {"instance_id": "s"})
        result = structured(await c.call_tool("approve", {"instance_id": "s"}))
        assert result["outcome"] == "rejected"
        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "s"}))
        assert done["instance"]["output"] == {"status": "rejected", "total": 0}


@pytest.mark.parametrize("mode", MODES)
async def test_without_elicitation_approve_never_fails_open(server: Any, mode: str) -> None:
    async with connect(server, mode) as c:  # no elicitation callback: no capability
        await c.call_tool("submit_plan", {"name": "sum", "source": APPROVAL_PLAN})
        await c.call_tool("start_instance", {"plan": "sum", "id": "s"})
        await c.call_tool("wait_for_instance", {"instance_id": "s"})
        result = await c.call_tool("approve", {"instance_id": "s"})
        data = structured(result)
        assert data["outcome"] == "pending_human" and not data["delivered"]
        assert "agentflow approve s" in text(result) and "agentflow reject s" in text(result)
        for case in ("approval", "Approval", "APPROVAL"):
            refused = await c.call_tool("send_event", {"instance_id": "s", "type": case})
            assert refused.is_error, case
        status = structured(await c.call_tool("get_instance", {"instance_id": "s"}))
        assert status["instance"]["status"] == "waiting"
        assert "approve" in status["summary"]


async def test_operator_human_only_types_and_other_events(af: AgentFlow) -> None:
    server = build_server(af, ServerConfig(agent_id="alice", human_only=frozenset({"reply"})))
    async with connect(server, elicitation_callback=elicitation(
            "accept", {"decision": "approve"})) as c:
        await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
        await c.call_tool("start_instance", {"plan": "r", "id": "r1"})
        await c.call_tool("wait_for_instance", {"instance_id": "r1"})
        assert (await c.call_tool("send_event", {"instance_id": "r1", "type": "reply"})).is_error
        assert (await c.call_tool("send_event", {"instance_id": "r1",
                                                 "type": "approval"})).is_error
        approved = structured(await c.call_tool("approve", {"instance_id": "r1"}))
        assert approved["type"] == "reply" and approved["outcome"] == "approved"

    async with connect(build_server(af, ServerConfig(agent_id="alice"))) as c:
        await c.call_tool("start_instance", {"plan": "r", "id": "r2"})
        await c.call_tool("wait_for_instance", {"instance_id": "r2"})
        # The first server's human-only type was written into the database's policy:
        # this server, not given it, refuses it all the same, until an operator lifts it.
        assert (await c.call_tool("send_event", {"instance_id": "r2", "type": "reply"})).is_error
        await OperatorPolicy(af.engine.store).remove_human_only("reply", by="ops")
        not_human = await c.call_tool("approve", {"instance_id": "r2"})
        assert not_human.is_error and "send_event" in text(not_human)
        sent = structured(await c.call_tool("send_event", {"instance_id": "r2", "type": "reply",
                                                           "payload": {"text": "hi"}}))
        assert sent["woke"]
        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "r2"}))
        assert done["instance"]["output"] == {"reply": {"text": "hi"}}


@pytest.mark.parametrize("mode", MODES)
async def test_controls_and_restart_with_upgrade(server: Any, mode: str) -> None:
    async with connect(server, mode) as c:
        await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
        await c.call_tool("start_instance", {"plan": "r", "id": "c1"})
        await c.call_tool("wait_for_instance", {"instance_id": "c1"})
        paused = structured(await c.call_tool("pause_instance", {"instance_id": "c1"}))
        assert paused["instance"]["status"] == "paused"
        resumed = structured(await c.call_tool("resume_instance", {"instance_id": "c1"}))
        assert resumed["instance"]["status"] in ("queued", "running", "waiting")
        await c.call_tool("wait_for_instance", {"instance_id": "c1"})
        v2 = structured(await c.call_tool("submit_plan", {
            "name": "r", "source": REPLY_PLAN.replace('"reply": reply', '"v2": reply')}))
        restarted = structured(await c.call_tool("restart_instance", {"instance_id": "c1",
                                                                      "upgrade": True}))
        assert restarted["instance"]["version"] == v2["plan"]["version"]
        assert restarted["previous_version"] != v2["plan"]["version"]
        await c.call_tool("wait_for_instance", {"instance_id": "c1"})
        await c.call_tool("send_event", {"instance_id": "c1", "type": "reply", "payload": 1})
        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "c1"}))
        assert done["instance"]["output"] == {"v2": 1}
        versions = structured(await c.call_tool("list_plans", {"name": "r"}))["plans"]
        assert [p["current"] for p in versions] == [False, True]
        listed = structured(await c.call_tool("list_instances", {"status": ["complete"]}))
        assert [i["id"] for i in listed["instances"]] == ["c1"]
        assert listed["instances"][0]["plan"] == "r"
        terminated = await c.call_tool("terminate_instance", {"instance_id": "c1"})
        assert terminated.is_error and "complete" in text(terminated)


async def test_wait_reports_progress_and_is_bounded(server: Any) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with connect(server) as c:
        await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
        await c.call_tool("start_instance", {"plan": "r", "id": "w1"})
        await c.call_tool("pause_instance", {"instance_id": "w1"})  # settled: paused
        quick = structured(await c.call_tool("wait_for_instance", {"instance_id": "w1"}))
        assert quick["settled"] and quick["instance"]["status"] == "paused"
        too_long = await c.call_tool("wait_for_instance", {"instance_id": "w1",
                                                           "timeout_seconds": 51})
        assert too_long.is_error and "timeout_seconds" in text(too_long)
    # A wait that does not settle: with no scheduler, the instance stays queued; the
    # wait reports progress until its timeout and says so.
    af_idle = AgentFlow("memory://", isolation="inline", run_scheduler=False)
    async with af_idle:
        idle = build_server(af_idle, ServerConfig(agent_id="alice"))
        async with connect(idle) as c:
            await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
            await c.call_tool("start_instance", {"plan": "r", "id": "q"})
            busy = structured(await c.call_tool(
                "wait_for_instance", {"instance_id": "q", "timeout_seconds": 2.5},
                progress_callback=on_progress))
    assert not busy["settled"] and busy["instance"]["status"] == "queued"
    assert 2.5 <= busy["waited_seconds"] < 10
    assert len(progress) >= 2 and all(total == 2.5 for _, total, _ in progress)
    assert "queued" in (progress[0][2] or "")


@pytest.mark.parametrize("mode", MODES)
async def test_resources_and_prompts(server: Any, mode: str) -> None:
    async with connect(server, mode) as c:
        await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
        await c.call_tool("start_instance", {"plan": "r", "id": "res-1"})
        await c.call_tool("wait_for_instance", {"instance_id": "res-1"})
        docs = (await c.read_resource("agentflow://docs/plan-api")).contents[0]
        assert "async def run(event, step)" in docs.text  # type: ignore[union-attr]
        assert "agentflow://docs/validator-codes" in docs.text  # type: ignore[union-attr]
        codes = (await c.read_resource("agentflow://docs/validator-codes")).contents[0]
        assert "AF301" in codes.text and "AF201" in codes.text  # type: ignore[union-attr]
        templates = {t.uri_template for t in
                     (await c.list_resource_templates()).resource_templates}
        assert templates == {"agentflow://plans/{name}", "agentflow://instances/{id}"}
        source = (await c.read_resource("agentflow://plans/r")).contents[0]
        assert source.text == REPLY_PLAN  # type: ignore[union-attr]
        inst = (await c.read_resource("agentflow://instances/res-1")).contents[0]
        assert '"res-1"' in inst.text and '"steps"' in inst.text  # type: ignore[union-attr]
        prompts = {p.name for p in (await c.list_prompts()).prompts}
        assert prompts == {"author_plan", "debug_instance"}
        authored = await c.get_prompt("author_plan", {"goal": "sum numbers"})
        body = authored.messages[0].content.text  # type: ignore[union-attr]
        assert "Goal: sum numbers" in body and "validate_plan" in body
        debug = await c.get_prompt("debug_instance", {"instance_id": "res-1"})
        body = debug.messages[0].content.text  # type: ignore[union-attr]
        assert "res-1" in body and "NonDeterminismError" in body


@pytest.mark.parametrize("mode", MODES)
async def test_an_argument_the_schema_does_not_name_is_refused(server: Any, mode: str
                                                               ) -> None:
    async with connect(server, mode) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        assert all(t.input_schema.get("additionalProperties") is False
                   for t in tools.values())
        await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN})
        await c.call_tool("start_instance", {"plan": "r", "id": "typo"})
        await c.call_tool("wait_for_instance", {"instance_id": "typo"})
        # "fromStep" for "from_step": dropping it would restart from the top.
        typo = await c.call_tool("restart_instance", {"instance_id": "typo",
                                                      "fromStep": "reply"})
        assert typo.is_error and "fromStep" in text(typo)
        refused = await c.call_tool("approve", {"instance_id": "typo", "by": "me"})
        assert refused.is_error and "by" in text(refused)


@pytest.mark.parametrize("mode", MODES)
async def test_unknown_ids_in_resources_and_prompts_are_clear_not_found_errors(
        af: AgentFlow, mode: str) -> None:
    bob = af.agent("bob")
    await bob.submit_plan("secret", REPLY_PLAN)
    await bob.start("secret", id="bobs")
    async with connect(build_server(af, ServerConfig(agent_id="alice")), mode) as c:
        for missing in ("nope", "bobs", "../x", "x" * 300):
            with pytest.raises(MCPError) as read:
                await c.read_resource(f"agentflow://instances/{missing}")
            assert read.value.code == INVALID_PARAMS  # the SDK's code for "no such resource"
            # "../x" matches no template, so the SDK itself answers "Unknown resource".
            assert missing in read.value.message
            with pytest.raises(MCPError) as prompt:
                await c.get_prompt("debug_instance", {"instance_id": missing})
            assert prompt.value.code == INVALID_PARAMS
            assert "no instance with id" in prompt.value.message
            assert "list_instances" in prompt.value.message
        with pytest.raises(MCPError) as plan:
            await c.read_resource("agentflow://plans/secret")  # bob's plan: not alice's
        assert plan.value.code == INVALID_PARAMS and "no plan named" in plan.value.message


@pytest.mark.parametrize("mode", MODES)
async def test_an_answer_given_while_the_instance_restarts_never_reaches_the_new_run(
        mode: str) -> None:
    # The clock stands still, so the new run waits at the same step with the same
    # deadline as the old one: only the request's reference tells the two waits apart.
    clock = ManualClock(1_800_000_000.0)
    async with AgentFlow("memory://", isolation="inline", clock=clock) as af:
        agent = af.agent("alice")
        seen: list[str] = []

        async def person(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
            seen.append(params.message)
            if len(seen) == 1:  # while this person reads, the agent restarts the instance
                await agent.restart("s")
                await eventually(lambda: waits_for_approval(agent, "s"))
            return types.ElicitResult(action="accept", content={"decision": "approve"})

        server = build_server(af, ServerConfig(agent_id="alice"))
        async with connect(server, mode, elicitation_callback=person) as c:
            await c.call_tool("submit_plan", {"name": "sum", "source": APPROVAL_PLAN})
            await c.call_tool("start_instance", {"plan": "sum", "id": "s"})
            await c.call_tool("wait_for_instance", {"instance_id": "s"})
            result = structured(await c.call_tool("approve", {"instance_id": "s"}))
        if mode == "legacy":  # asked mid-call: the answer is checked and found stale
            assert result["outcome"] == "stale" and not result["delivered"]
            assert len(seen) == 1
            assert (await agent.status("s")).status == "waiting"
            assert await af.engine.store.pending_events("s", "approval") == []  # none sent
        else:  # asked in rounds: the changed question is asked again, about the new run
            assert len(seen) == 2  # the same words: the form names the wait ($comment)
            assert result["outcome"] == "approved" and result["delivered"]
            assert (await agent.wait("s", timeout=5)).output["status"] == "approved"
        history = await agent.history("s")
        assert sum(1 for r in history if r.name == "approval") <= 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_restart_right_after_an_approval_does_not_hand_it_to_the_new_run(
        tmp_path: Path, mode: str) -> None:
    url = f"sqlite:///{tmp_path}/af.db"
    answer = elicitation("accept", {"decision": "approve"})
    # The server only steers; a driver process runs the plans, and is stopped while
    # the approval is sent, so the approval is buffered, not consumed, at the restart.
    async with AgentFlow(url, isolation="inline", run_scheduler=False) as steering:
        server = build_server(steering, ServerConfig(agent_id="alice"))
        async with connect(server, mode, elicitation_callback=answer) as c:
            await c.call_tool("submit_plan", {"name": "sum", "source": APPROVAL_PLAN})
            async with AgentFlow(url, isolation="inline", run_scheduler=True):
                await c.call_tool("start_instance", {"plan": "sum", "id": "s"})
                await eventually(lambda: waits_for_approval(steering.agent("alice"), "s"))
            approved = structured(await c.call_tool("approve", {"instance_id": "s"}))
            assert approved["delivered"]
            structured(await c.call_tool("restart_instance", {"instance_id": "s"}))
            async with AgentFlow(url, isolation="inline", run_scheduler=True):
                status = structured(await c.call_tool("wait_for_instance",
                                                      {"instance_id": "s"}))
    assert status["instance"]["status"] == "waiting"  # for a new approval, not done
    assert status["instance"]["waiting_on"]["type"] == "approval"

async def waits_for_approval(agent: Any, instance_id: str) -> bool:
    status = await agent.status(instance_id)
    return bool(status.status == "waiting" and status.waiting_on is not None
                and status.waiting_on.type == "approval")


PRINTS_HIDDEN_TEXT = '''
async def run(event, step):
    print("reads left to right \\u202egnp.exe, ends \\x1b[2K")
    return await step.do("echo", lambda: "\\u202eevil")
'''


@pytest.mark.parametrize("mode", MODES)
async def test_summaries_write_text_that_could_hide_or_reorder_as_escapes(
        server: Any, mode: str) -> None:
    # A plan's print (and its output) reached the model's text raw: a client that shows
    # it to a person would render the bidi override and the ANSI escape.
    async with connect(server, mode) as c:
        assert structured(await c.call_tool("submit_plan", {
            "name": "hide", "source": PRINTS_HIDDEN_TEXT}))["ok"]
        await c.call_tool("start_instance", {"plan": "hide", "id": "hide-1"})
        done = await c.call_tool("wait_for_instance", {"instance_id": "hide-1"})
        assert structured(done)["instance"]["output"] == "\u202eevil"  # the data, as is
        history = await c.call_tool("get_history", {"instance_id": "hide-1"})
        for result in (done, history):
            summary = result.content[0].text  # type: ignore[union-attr]
            assert "\u202e" not in summary and "\x1b" not in summary, summary
        assert "\\u202egnp.exe" in history.content[0].text  # type: ignore[union-attr]
