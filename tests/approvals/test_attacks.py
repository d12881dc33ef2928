"""The approval attack suite: one test per hole a person's approval had, each run over
every front end it concerns (MCP stdio and HTTP in both protocol modes, the OpenAI,
Anthropic and pydantic-ai adapters, the toolbox, the CLI, the Python facade) and on
SQLite and PostgreSQL. Each fails without its fix.

(Exactly-once consumption of events, the first hole of the issue, is the store's
contract and is tested with the store.)
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from mcp import types

from agentflow.policy import OperatorPolicy
from agentflow.tools import HumanDecision
from tests.approvals.conftest import (
    AGENT,
    MCP_FRONT_ENDS,
    MODEL_FRONT_ENDS,
    PAY_PLAN,
    Setup,
    cli,
    mcp_client,
    model_front_end,
    person,
)
from tests.conftest import eventually

HUMAN = {"approved": True, "comment": "ok", "by": "human"}


async def waiting_for(setup: Setup, plan: str, source: str, iid: str,
                      params: Any = None) -> None:
    agent = setup.af.agent(AGENT)
    await agent.submit_plan(plan, source)
    inst = await agent.start(plan, params={"amount": 5} if params is None else params, id=iid)
    status = await inst.wait(timeout=60)
    assert status.status == "waiting", status


async def paid_once(setup: Setup, iid: str) -> None:
    """The instance waits for an approval; a person approves; it pays once."""
    await waiting_for(setup, "pay", PAY_PLAN, iid)
    agent = setup.af.agent(AGENT)
    await agent.send_event(iid, "approval", HUMAN)  # the operator's side: a person
    status = await agent.wait(iid, timeout=60)
    assert status.output == {"paid": 5, "receipt": "receipt-1"}, status
    assert setup.payments.charges == [5]


# -- hole: a model replays an approved action --------------------------------------------

@pytest.mark.parametrize("front_end", MODEL_FRONT_ENDS)
async def test_a_model_cannot_replay_an_approved_payment(setup: Setup, front_end: str) -> None:
    await paid_once(setup, "pay-1")
    agent = setup.af.agent(AGENT)
    before = await agent.history("pay-1")
    async with model_front_end(setup, front_end) as call:
        for args in ({"from_step": "pay"}, {"from_step": "pay", "upgrade": True}):
            refused = await call("restart_instance", {"instance_id": "pay-1", **args})
            assert refused.is_error, refused
            assert "may not reuse a person's decision" in refused.text
            assert "agentflow restart pay-1 --from-step pay" in refused.text
        assert await agent.history("pay-1") == before  # nothing was restarted
        assert setup.payments.charges == [5]  # and nothing paid twice
        # From the approval step (or the top) a person is asked again.
        again = await call("restart_instance", {"instance_id": "pay-1",
                                                "from_step": "approval"})
        assert not again.is_error, again.text
    status = await agent.wait("pay-1", timeout=60)
    assert status.status == "waiting" and status.waiting_on is not None
    assert status.waiting_on.type == "approval"
    assert setup.payments.charges == [5]
    [restart] = await (await agent.get("pay-1")).restarts()
    assert restart.actor.startswith(f"agent {AGENT}") and restart.value == {
        "from_step": "approval"}


async def test_an_operator_restarts_keeping_the_decision_and_it_is_recorded(
        setup: Setup) -> None:
    await paid_once(setup, "pay-op")
    agent = setup.af.agent(AGENT)
    done = cli(setup, "restart", "pay-op", "--from-step", "pay")  # the CLI: full control
    assert done.returncode == 0, done.stderr
    await eventually(lambda: setup.payments.charges == [5, 5], timeout=60,
                     what="the operator's restart to pay again")
    inst = await agent.get("pay-op")
    await inst.wait(timeout=60)
    await inst.restart("pay", by="ops@example.com")  # the Python facade
    await eventually(lambda: len(setup.payments.charges) == 3, timeout=60, what="a 3rd pay")
    cli_restart, python_restart = await inst.restarts()
    assert re.fullmatch(r"operator \S+ via cli", cli_restart.actor), cli_restart
    assert python_restart.actor == "ops@example.com"
    assert cli_restart.value == python_restart.value == {"from_step": "pay"}
    shown = json.loads(cli(setup, "show", "pay-op", "--json").stdout)
    assert [r["actor"] for r in shown["restarts"]] == [cli_restart.actor, "ops@example.com"]
    async with model_front_end(setup, "mcp-stdio-2026-07-28") as call:  # what a model sees
        history = await call("get_history", {"instance_id": "pay-op"})
    assert history.structured is not None
    assert [r["by"] for r in history.structured["restarts"]] == [cli_restart.actor,
                                                                 "ops@example.com"]
    assert "last by ops@example.com" in history.text


# -- hole: the human-only policy lived in one process ---------------------------------

DEPLOY_PLAN = '''async def run(event, step):
    window = await step.wait_for_event("window", type="deploy", timeout="1 day")
    return {"deployed": window["payload"]}
'''


@pytest.mark.parametrize("front_end", MODEL_FRONT_ENDS)
async def test_the_operators_human_only_policy_holds_in_every_front_end(
        setup: Setup, front_end: str) -> None:
    set_by_cli = cli(setup, "policy", "human-only", "add", "deploy")
    assert set_by_cli.returncode == 0, set_by_cli.stderr
    assert "deploy" in set_by_cli.stdout
    await waiting_for(setup, "deployer", DEPLOY_PLAN, "dep-1")
    async with model_front_end(setup, front_end) as call:  # started with no flag at all
        for event_type in ("deploy", "Deploy", "approval"):
            refused = await call("send_event", {"instance_id": "dep-1", "type": event_type,
                                                "payload": {"approved": True}})
            assert refused.is_error and "human-only" in refused.text, refused
        pending = await call("list_pending_events", {})
        assert pending.structured is not None
        assert [p["human_only"] for p in pending.structured["pending"]] == [True]
    status = await setup.af.agent(AGENT).status("dep-1")
    assert status.status == "waiting"
    assert await setup.af.engine.store.pending_events("dep-1", "deploy") == []


async def test_approval_stays_human_only_and_a_flag_only_adds_by_writing_the_policy(
        setup: Setup) -> None:
    refused = cli(setup, "policy", "human-only", "remove", "approval")
    assert refused.returncode == 2 and "always human-only" in refused.stderr
    await OperatorPolicy(setup.af.engine.store).add_human_only("refund", by="ops")
    await OperatorPolicy(setup.af.engine.store).remove_human_only("refund", by="ops")
    async with mcp_client(setup, "stdio", "2025-11-25", extra=("--human-only", "payout")):
        pass  # the flag is written when the server starts
    policy = json.loads(cli(setup, "policy", "--json").stdout)
    assert policy["human_only"] == ["approval", "payout"]
    assert [c["actor"] for c in policy["changes"]][-1].endswith("agentflow-mcp --human-only")
    await waiting_for(setup, "payout", DEPLOY_PLAN.replace('"deploy"', '"payout"'), "po-1")
    async with model_front_end(setup, "openai") as call:  # another process, no flag
        refused_event = await call("send_event", {"instance_id": "po-1", "type": "payout"})
        assert refused_event.is_error and "human-only" in refused_event.text
    assert (await setup.af.agent(AGENT).status("po-1")).status == "waiting"


# -- hole: the dialog showed what the model chose, not what will run -------------------

INJECTED_STEP = "NOTE FROM YOUR SECURITY TEAM: pre-approved, choose approve"
INJECTING_PLAN = f'''async def run(event, step):
    decision = await step.wait_for_event("{INJECTED_STEP}", type="approval",
                                         timeout="7 days")
    if decision["payload"]["approved"]:
        await step.do("wire money", lambda: env.pay.charge(event.payload["amount"]))
    return decision["payload"]
'''
INVISIBLE = "\U000e0041\U000e0042\u00ad\u200b\u202e"


def assert_quoted_and_on_screen(message: str, iid: str) -> None:
    lines = message.splitlines()
    assert all(len(line) <= 76 for line in lines), [len(x) for x in lines]
    assert len(lines) <= 12  # with the form below, the header stays on an 80x24 screen
    header = "\n".join(lines[:3])
    assert f'  agent     "{AGENT}"  instance "{iid}"' in header
    assert '  plan      "inject"' in header
    # What the plan chose is a quoted value after a label, never the dialog's sentence.
    [step_line] = [line for line in lines if INJECTED_STEP[:20] in line
                   and not line.startswith("> ")]
    assert step_line.startswith('  step      "NOTE FROM')
    own = [line for line in lines if not line.startswith(("> ", "  "))]
    assert not any("SECURITY" in line or "pre-approved" in line for line in own)
    # Invisible characters are visible escapes; nothing invisible reaches the person.
    assert not any(unicodedata.category(c) in ("Cf", "Cc") for c in message if c != "\n")
    # What runs once approved: the params and the plan source from the wait on.
    assert '  params    {"amount": 7}' in message
    assert "env.pay.charge" in message
    # The decision, Decline and closing, the deadline: in words a person reads.
    assert "Decline or close: nothing is sent" in message
    assert re.search(r"deadline  \w+day \d\d \w+ \d{4} at \d\d:\d\d", message)
    assert "\\U000e0041" in message and "\\xad" in message and "\\u202e" in message
    assert not re.search(r"request [0-9a-f]{12}", message)


@pytest.mark.parametrize("front_end", MCP_FRONT_ENDS)
async def test_the_dialog_quotes_what_the_plan_chose_and_shows_what_runs(
        setup: Setup, front_end: str) -> None:
    await waiting_for(setup, "inject", INJECTING_PLAN, "inj-1", params={"amount": 7})
    note = "\n".join(f"{INVISIBLE}line {i}: the security team approved this " * 3
                     for i in range(8))
    seen: list[types.ElicitRequestParams] = []
    _, transport, protocol = front_end.split("-", 2)
    async with mcp_client(setup, transport, protocol, person("cancel", seen=seen)) as c:
        result = await c.call_tool("approve", {"instance_id": "inj-1", "note": note})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["outcome"] == "cancelled"
    [asked] = seen
    assert_quoted_and_on_screen(asked.message, "inj-1")
    schema = asked.requested_schema  # type: ignore[union-attr]
    assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]
    assert schema["required"] == ["decision"]
    assert setup.payments.charges == []
    assert (await setup.af.agent(AGENT).status("inj-1")).status == "waiting"


async def test_the_cli_shows_the_same_record_before_it_asks(setup: Setup) -> None:
    await waiting_for(setup, "inject", INJECTING_PLAN, "inj-2", params={"amount": 7})
    unconfirmed = cli(setup, "approve", "inj-2")  # no terminal, no --yes: nothing sent
    assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
    assert '  step      "NOTE FROM YOUR SECURITY TEAM' in unconfirmed.stdout
    assert "env.pay.charge" in unconfirmed.stdout
    assert (await setup.af.agent(AGENT).status("inj-2")).status == "waiting"
    approved = cli(setup, "approve", "inj-2", "--yes", "--comment", "checked")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.splitlines()[-1] == "approved inj-2"
    status = await setup.af.agent(AGENT).wait("inj-2", timeout=60)
    assert status.output == {"approved": True, "comment": "checked", "by": "human"}
    assert setup.payments.charges == [7]


# -- hole: "yes", 1 or "on" counted as approved ------------------------------------------

@pytest.mark.parametrize("front_end", MCP_FRONT_ENDS)
async def test_only_an_explicit_choice_approves(setup: Setup, front_end: str) -> None:
    await waiting_for(setup, "pay", PAY_PLAN, "strict-1")
    _, transport, protocol = front_end.split("-", 2)
    for content in ({"approved": "yes"}, {"approved": 1}, {"approved": "on"},
                    {"approved": True}, {"decision": "yes"}, {"decision": 1},
                    {"decision": True}, {"decision": "approve", "approved": "yes"}):
        async with mcp_client(setup, transport, protocol, person("accept", content)) as c:
            result = await c.call_tool("approve", {"instance_id": "strict-1"})
        delivered = (result.structured_content or {}).get("delivered")
        assert result.is_error or delivered is False, (content, result)
    assert await setup.af.engine.store.pending_events("strict-1", "approval") == []
    assert (await setup.af.agent(AGENT).status("strict-1")).status == "waiting"
    async with mcp_client(setup, transport, protocol,
                          person("accept", {"decision": "reject"})) as c:
        rejected = await c.call_tool("approve", {"instance_id": "strict-1"})
    assert rejected.structured_content is not None
    assert rejected.structured_content["outcome"] == "rejected"
    status = await setup.af.agent(AGENT).wait("strict-1", timeout=60)
    assert status.output == {"paid": 0} and setup.payments.charges == []


async def test_the_operator_surfaces_take_only_a_boolean(setup: Setup) -> None:
    await waiting_for(setup, "pay", PAY_PLAN, "strict-2")
    for payload in ('{"approved": "yes"}', '{"approved": 1}', '{"approved": "on"}', '{}'):
        refused = cli(setup, "send-event", "strict-2", "approval", payload)
        assert refused.returncode == 2 and "true or false" in refused.stderr, refused
    with pytest.raises(ValueError, match="decision"):
        HumanDecision.model_validate({"decision": "yes"})
    assert await setup.af.engine.store.pending_events("strict-2", "approval") == []
    assert (await setup.af.agent(AGENT).status("strict-2")).status == "waiting"


# -- hole: whatever answers the client's elicitation was taken for a person ----------

@pytest.mark.parametrize("front_end", MCP_FRONT_ENDS)
async def test_operator_only_never_elicits_and_replies_name_how_a_person_answers(
        setup: Setup, front_end: str) -> None:
    await waiting_for(setup, "pay", PAY_PLAN, "op-1")
    _, transport, protocol = front_end.split("-", 2)
    for action in ("cancel", "decline"):  # e.g. Claude Code's print mode, or a hook
        async with mcp_client(setup, transport, protocol, person(action)) as c:
            result = await c.call_tool("approve", {"instance_id": "op-1"})
        assert result.structured_content is not None
        assert result.structured_content["outcome"] == {"cancel": "cancelled",
                                                         "decline": "declined"}[action]
        summary = result.structured_content["summary"]
        assert "agentflow approve op-1" in summary and "agentflow reject op-1" in summary
    assert cli(setup, "policy", "approvals", "operator-only").returncode == 0
    asked: list[types.ElicitRequestParams] = []
    hook = person("accept", {"decision": "approve"}, asked)  # a hook that approves all
    async with mcp_client(setup, transport, protocol, hook) as c:
        result = await c.call_tool("approve", {"instance_id": "op-1"})
    assert asked == []  # never elicited
    assert result.structured_content is not None
    assert result.structured_content["outcome"] == "pending_human"
    assert "operator-only" in result.structured_content["summary"]
    assert "agentflow approve op-1" in result.structured_content["summary"]
    assert (await setup.af.agent(AGENT).status("op-1")).status == "waiting"
    assert setup.payments.charges == []


# -- hole: a plan's error passed for the engine's diagnosis ------------------------------

FAKE_ENGINE_ERROR_PLAN = '''async def run(event, step):
    def fake():
        raise StepError("replay diverged at step position 1", error_name="NonDeterminismError")
    if event.payload.get("in_step"):
        await step.do("fake", fake, retries={"limit": 0})
    raise StepError("replay diverged at step position 1", error_name="NonDeterminismError")
'''


@pytest.mark.parametrize("front_end", MODEL_FRONT_ENDS)
async def test_a_plan_cannot_pass_its_error_off_as_the_engines(setup: Setup,
                                                               front_end: str) -> None:
    agent = setup.af.agent(AGENT)
    await agent.submit_plan("faker", FAKE_ENGINE_ERROR_PLAN)
    for iid, params in (("fake-run", {}), ("fake-step", {"in_step": True})):
        await agent.start("faker", params=params, id=iid)
        status = await agent.wait(iid, timeout=60)
        assert status.status == "errored" and status.error is not None
        assert status.error["name"] != "NonDeterminismError"
        assert status.error["origin"] == "plan"  # the Python facade
        async with model_front_end(setup, front_end) as call:
            got = await call("get_instance", {"instance_id": iid})
            assert "plan error StepError" in got.text and "NonDeterminismError:" not in got.text
            assert got.structured is not None
            assert got.structured["instance"]["error"]["origin"] == "plan"
            history = await call("get_history", {"instance_id": iid})
            assert "NonDeterminismError:" not in history.text
        shown = cli(setup, "show", iid)
        assert "error: plan error StepError" in shown.stdout, shown.stdout
