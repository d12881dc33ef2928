"""The shared tool layer (`agentflow.tools`) without MCP: what the model adapters use."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from agentflow import AgentFlow
from agentflow.tools import (
    TOOLS,
    ApprovalRequest,
    HumanAnswer,
    HumanDecision,
    ToolContext,
    call_tool,
    load_prompt,
    render_approval,
)
from sandbox import validate
from tests.mcp_server.conftest import APPROVAL_PLAN, REPO


async def test_call_tool_takes_json_text_and_reports_mistakes(af: AgentFlow) -> None:
    agent = af.agent("alice")
    ok = await call_tool(agent, "validate_plan", json.dumps({"source": APPROVAL_PLAN}))
    assert not ok.is_error and ok.result is not None and "valid" in ok.text
    for name, arguments, expected in [
        ("nope", {}, "unknown tool 'nope'"),
        ("validate_plan", "{not json", "not valid JSON"),
        ("validate_plan", "[1]", "must be a JSON object"),
        ("validate_plan", {"source": 1}, "invalid arguments for validate_plan: source:"),
        ("list_pending_events", {"extra": 1}, "extra: not an argument of list_pending_events"
                                              ". Accepted fields: none."),
        ("get_instance", {"instance": "i"}, "instance_id: missing (required); instance: not "
         "an argument of get_instance. Accepted fields: instance_id (string, required)."),
        ("get_instance", {"instance_id": "missing"}, "no instance with id 'missing'"),
    ]:
        outcome = await call_tool(agent, name, arguments)
        assert outcome.is_error and outcome.result is None
        assert expected in outcome.text, outcome.text
        assert outcome.text.startswith("Error: ")


def test_every_tool_has_a_handler_and_described_models() -> None:
    for name, spec in TOOLS.items():
        assert spec.name == name and spec.description and len(spec.description) < 600
        assert spec.handler.__name__ == f"handle_{name}"
        schema = spec.args_model.model_json_schema()
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), (name, field)
        assert "summary" in spec.result_model.model_fields


async def approval_waiting(af: AgentFlow) -> str:
    agent = af.agent("alice")
    await agent.submit_plan("p", APPROVAL_PLAN)
    inst = await agent.start("p", params={"numbers": [2, 3]})
    await inst.wait(timeout=5)
    return inst.id


async def test_approve_without_a_person_sends_nothing(af: AgentFlow) -> None:
    instance_id = await approval_waiting(af)
    agent = af.agent("alice")
    outcome = await call_tool(agent, "approve", {"instance_id": instance_id})
    assert outcome.result is not None and outcome.result.outcome == "pending_human"  # type: ignore[attr-defined]
    assert f"agentflow approve {instance_id}" in outcome.text
    assert (await agent.status(instance_id)).status == "waiting"
    refused = await call_tool(agent, "send_event", {"instance_id": instance_id,
                                                    "type": "approval", "payload": {}})
    assert refused.is_error and "human-only" in refused.text


async def test_approve_delivers_only_the_persons_answer_to_the_request_they_saw(
        af: AgentFlow) -> None:
    instance_id = await approval_waiting(af)
    agent = af.agent("alice")
    asked: list[ApprovalRequest] = []

    async def stale_person(request: ApprovalRequest) -> HumanAnswer:
        asked.append(request)
        older = request.model_copy(update={"deadline": request.deadline - timedelta(1)})
        return HumanAnswer(action="accept", decision=HumanDecision(decision="approve"),
                           request=older)

    stale = await call_tool(agent, "approve", {"instance_id": instance_id, "note": "n"},
                            ToolContext(ask_human=stale_person))
    assert stale.result is not None and stale.result.outcome == "stale"  # type: ignore[attr-defined]
    assert asked[0].note == "n" and asked[0].type == "approval" and asked[0].plan == "p"
    assert (await agent.status(instance_id)).status == "waiting"

    async def person(request: ApprovalRequest) -> HumanAnswer:
        return HumanAnswer(action="accept", request=request,
                           decision=HumanDecision(decision="approve", comment="fine"))

    approved = await call_tool(agent, "approve", {"instance_id": instance_id},
                               ToolContext(ask_human=person))
    assert approved.result is not None and approved.result.outcome == "approved"  # type: ignore[attr-defined]
    status = await agent.wait(instance_id, timeout=5)
    assert status.output == {"status": "approved", "total": 5, "by": "human"}


async def test_another_agent_sees_nothing(af: AgentFlow) -> None:
    instance_id = await approval_waiting(af)
    bob = af.agent("bob")
    for name, arguments in [("get_instance", {"instance_id": instance_id}),
                            ("get_history", {"instance_id": instance_id}),
                            ("approve", {"instance_id": instance_id}),
                            ("terminate_instance", {"instance_id": instance_id})]:
        theirs = await call_tool(bob, name, arguments)
        missing = await call_tool(bob, name, {**arguments, "instance_id": "missing"})
        assert theirs.text.replace(instance_id, "X") == missing.text.replace("missing", "X")
    assert (await call_tool(bob, "list_plans", {})).result.plans == []  # type: ignore[union-attr]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


@pytest.mark.parametrize("name", ["plan-authoring", "debug-instance"])
def test_prompt_examples_validate(name: str) -> None:
    text = load_prompt(name)
    for block in python_blocks(text):
        report = validate(block)
        assert report.ok, (block, report.diagnostics)
    codes = set(re.findall(r"AF\d{3}", text))
    from sandbox import DIAGNOSTIC_CODES

    assert codes <= set(DIAGNOSTIC_CODES), codes - set(DIAGNOSTIC_CODES)
    for tool in re.findall(r"`([a-z_]+)`", text):
        if tool.endswith(("_plan", "_instance", "_events", "_history")) or tool == "approve":
            assert tool in TOOLS, tool


def test_plan_authoring_guide_names_every_validator_rule_family() -> None:
    text = load_prompt("plan-authoring")
    assert len(python_blocks(text)) >= 5
    for family in ("AF0", "AF1", "AF2", "AF3", "AF4", "AF5"):
        assert family in text, family
    with pytest.raises(FileNotFoundError, match="plan-authoring"):
        load_prompt("nope")


def test_layering_agentflow_imports_no_mcp_and_nothing_imports_mcp_server() -> None:
    code = ("import sys, json, agentflow.tools\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    loaded = set(json.loads(out.stdout))
    for banned in ("mcp", "mcp_server", "openai", "anthropic"):
        assert not any(m == banned or m.startswith(banned + ".") for m in loaded), banned
    for package in ("agentflow", "sandbox"):
        for path in (REPO / package).rglob("*.py"):
            source = path.read_text()
            if path == REPO / "agentflow" / "cli" / "_serve.py":
                continue  # `agentflow serve --mcp` composes both (tests/test_layering.py)
            assert not re.search(r"^\s*(from|import)\s+mcp_server", source, re.M), path
            if package == "agentflow":
                assert not re.search(r"^\s*(from|import)\s+mcp\b", source, re.M), path


def test_prompts_ship_beside_the_packages() -> None:
    assert (REPO / "prompts" / "plan-authoring.md").is_file()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'prompts = ["*.md"]' in pyproject
    assert 'agentflow-mcp = "mcp_server.__main__:main"' in pyproject


async def test_an_operators_human_only_types_add_to_approval_never_replace_it(
        af: AgentFlow) -> None:
    instance_id = await approval_waiting(af)
    agent = af.agent("alice")
    context = ToolContext(human_only=frozenset({"deploy"}))
    assert context.human_only == {"approval", "deploy"}
    for event_type in ("approval", "deploy"):
        refused = await call_tool(agent, "send_event", {"instance_id": instance_id,
                                                        "type": event_type,
                                                        "payload": {"approved": True}},
                                  context)
        assert refused.is_error and "human-only" in refused.text
    assert (await agent.status(instance_id)).status == "waiting"


async def test_arguments_nested_too_deeply_are_an_error_result(af: AgentFlow) -> None:
    deep = "[" * 5000 + "]" * 5000
    outcome = await call_tool(af.agent("alice"), "start_instance",
                              '{"plan": "p", "params": ' + deep + "}")
    assert outcome.is_error and "nested too deeply" in outcome.text


GATED_V1 = '''async def run(event, step):
    decision = await step.wait_for_event("approval", type="approval", timeout="1 day")
    target = await step.do("target", lambda: "staging")
    return {"deployed_to": target, "approved": decision["payload"]["approved"]}
'''
GATED_V2 = GATED_V1.replace('"staging"', '"production"')


async def test_an_approval_is_not_carried_over_to_a_version_nobody_approved(
        af: AgentFlow) -> None:
    agent = af.agent("alice")
    await agent.submit_plan("gated", GATED_V1)
    inst = await agent.start("gated")
    await inst.wait(timeout=5)
    await agent.send_event(inst.id, "approval", {"approved": True})  # a person, for v1
    assert (await inst.wait(timeout=5)).output["deployed_to"] == "staging"
    await agent.submit_plan("gated", GATED_V2)  # the model changes what follows
    sneaky = await call_tool(agent, "restart_instance", {
        "instance_id": inst.id, "from_step": "target", "upgrade": True})
    assert sneaky.is_error and "may not reuse a person's decision" in sneaky.text
    assert (await inst.status()).output["deployed_to"] == "staging"  # nothing restarted
    # Without upgrade too: a model never replays what follows a person's decision.
    same = await call_tool(agent, "restart_instance", {"instance_id": inst.id,
                                                       "from_step": "target"})
    assert same.is_error and f"agentflow restart {inst.id} --from-step target" in same.text
    # From the approval itself, a person is asked again about the new version.
    fresh = await call_tool(agent, "restart_instance", {
        "instance_id": inst.id, "from_step": "approval", "upgrade": True})
    assert not fresh.is_error, fresh.text
    status = await inst.wait(timeout=5)
    assert status.status == "waiting" and status.waiting_on is not None
    assert status.waiting_on.type == "approval"


TWO_GATES = '''async def run(event, step):
    stage = await step.wait_for_event("stage", type="approval", timeout="1 day")
    prod = await step.wait_for_event("prod", type="approval", timeout="1 day")
    return [stage["payload"]["comment"], prod["payload"]["comment"]]
'''


async def test_two_answers_to_one_question_deliver_one_decision(af: AgentFlow) -> None:
    # Two approve calls ask about the same wait ("stage") at once, and the person
    # accepts both. Only one decision may be sent: the other must not fall through to
    # the next wait ("prod"), which nobody was asked about.
    agent = af.agent("alice")
    await agent.submit_plan("gates", TWO_GATES)
    inst = await agent.start("gates")
    await inst.wait(timeout=5)
    asked: list[ApprovalRequest] = []
    both_asked = asyncio.Event()

    async def person(request: ApprovalRequest) -> HumanAnswer:
        asked.append(request)
        if len(asked) == 2:
            both_asked.set()
        await both_asked.wait()
        return HumanAnswer(action="accept", request=request,
                           decision=HumanDecision(decision="approve", comment=request.step))

    outcomes = await asyncio.gather(*(
        call_tool(agent, "approve", {"instance_id": inst.id}, ToolContext(ask_human=person))
        for _ in range(2)))
    assert [a.step for a in asked] == ["stage", "stage"]
    kinds = sorted(o.result.outcome for o in outcomes)  # type: ignore[union-attr]
    assert kinds == ["approved", "stale"]
    status = await inst.wait(timeout=5)
    assert status.status == "waiting" and status.waiting_on is not None
    assert status.waiting_on.step == "prod"  # still waits for a person about prod


async def test_a_locked_database_is_a_clear_error_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from agentflow.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_BUSY_RETRY_SECONDS", 0.3)  # not a minute
    flow = AgentFlow(f"sqlite:///{tmp_path}/locked.db", isolation="inline")
    flow.engine._store._busy_timeout = 0.05  # type: ignore[attr-defined]
    async with flow:
        holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another process, mid-write
            outcome = await call_tool(flow.agent("alice"), "submit_plan",
                                      {"name": "p", "source": APPROVAL_PLAN})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert outcome.is_error and "database is unavailable" in outcome.text
        assert "database is locked" in outcome.text and "nothing was changed" in outcome.text
        assert await flow.agent("alice").plans() == []


async def test_the_agents_note_cannot_pass_for_the_dialogs_own_text(af: AgentFlow) -> None:
    instance_id = await approval_waiting(af)
    seen: list[str] = []

    seen_request: list[ApprovalRequest] = []

    async def person(request: ApprovalRequest) -> HumanAnswer:
        seen.append(request.message())
        seen_request.append(request)
        return HumanAnswer(action="cancel", request=request)

    note = ("Routine change.\n\nApprove or reject. The security team verified this."
            "\u202egnp.exe\x1b[2J")
    await call_tool(af.agent("alice"), "approve", {"instance_id": instance_id, "note": note},
                    ToolContext(ask_human=person))
    (message,) = seen
    assert "\n> Routine change. …\n" in message  # one line in the dialog, behind "> "
    full = render_approval(seen_request[0])  # the CLI shows it all
    assert "> Routine change.\n>\n> Approve or reject. The security team verified" in (
        full.replace("> \n", ">\n"))
    assert "\\u202e" in full and "\\x1b" in full
    assert "\u202e" not in full + message and "\x1b" not in full + message
    # The dialog's own closing line is the last one, and only once unquoted.
    lines = message.splitlines()
    assert lines[-1].startswith("Choose approve or reject. Decline or close: nothing is sent")
    assert [line for line in lines if not line.startswith(("> ", "  "))
            and "approve or reject" in line.lower()] == [lines[-1]]
