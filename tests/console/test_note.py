"""A plan's note given with its approval wait (``wait_for_event(..., note=...)``) is
kept with the wait and shown in the approval record on every surface, escaped: as text
in the console (no markup), and without control or bidi characters in the terminal and
in the elicitation's text."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from agentflow import AgentFlow
from agentflow.console import ConsoleConfig, parse_operators
from agentflow.tools import approval_request
from tests.console.conftest import ALICE, ROOT, serving

NOTE = ('Posts <img src=x onerror="window.__pwned=1"> to <b>prod</b> '
        '\x1b[2J\x1b[31mAPPROVED\x07 \u202etxet desrever\u202c zero\u200bwidth\rover')
NOTED = f'''async def run(event, step):
    d = await step.wait_for_event("approval", type="approval", timeout="7 days",
                                  note={NOTE!r})
    return d["payload"]["approved"]
'''
# Control, bidi and zero-width characters that must never reach a terminal raw.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


async def _waiting(tmp_path: Path) -> tuple[str, str]:
    db = f"sqlite:///{tmp_path}/n.db"
    async with AgentFlow(db, isolation="inline") as flow:
        agent = flow.agent("agent-1")
        await agent.submit_plan("noted", NOTED)
        inst = await agent.start("noted", params={"repo": "r"}, id="noted-1")
        status = await agent.wait(inst.id, timeout=60)
        assert status.status == "waiting"
        assert status.waits[0].note == NOTE  # kept with the wait, as given
        record = await approval_request(agent, inst.id, "", frozenset({"approval"}))
        assert record.note == NOTE
        both = await approval_request(agent, inst.id, "and my words", frozenset({"approval"}))
        assert both.note == f"{NOTE}\nand my words"
        # The elicitation's text: the note is there, escaped.
        message = record.message()
        assert "The agent's note" in message and "> Posts <img" in message
        assert not RAW.search(message)
    return db, inst.id


async def test_the_cli_shows_the_plans_note_escaped(tmp_path: Path) -> None:
    db, instance_id = await _waiting(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "approve", instance_id, "--db", db,
        cwd=ROOT, env=dict(os.environ), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert "The agent's note (its own words, not verified):" in text, (text, err)
    assert "> Posts <img" in text and "APPROVED" in text
    assert not RAW.search(text)
    assert "nothing was sent" in err.decode()


async def test_the_console_shows_the_plans_note_as_text(tmp_path: Path) -> None:
    import httpx2

    db, instance_id = await _waiting(tmp_path)
    flow = AgentFlow(db, isolation="inline", run_scheduler=False)
    config = ConsoleConfig(operators=parse_operators([f"alice={ALICE}"]), secret=b"n" * 32)
    async with serving(flow, config) as url, httpx2.AsyncClient(base_url=url) as http:
        form = await http.get("/login")
        login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert login_token is not None
        signed = await http.post("/login", data={
            "token": ALICE, "next": "/approvals", "login_token": login_token.group(1)})
        assert signed.status_code == 303
        for path in ("/approvals", f"/instances/{instance_id}"):
            page = (await http.get(path)).text
            assert "The agent&#39;s note" in page or "The agent's note" in page
            assert "Posts &lt;img src=x onerror=" in page, path
            assert "<img src=x" not in page and "<b>prod" not in page
            assert "APPROVED" in page and not RAW.search(page)


@pytest.mark.parametrize("note", [3, "x" * 2001])
async def test_a_note_must_be_short_text(tmp_path: Path, note: object) -> None:
    from agentflow import Engine

    async def waits(event: object, step: object) -> object:
        return await step.wait_for_event("w", type="approval", note=note)  # type: ignore[attr-defined]

    engine = Engine(f"sqlite:///{tmp_path}/e.db")
    engine.register("waits", waits)
    async with engine:
        inst = await engine.binding("waits").create(id="x")
        status = await inst.wait(timeout=60)
    assert status.status == "errored" and status.error is not None
    assert "note" in str(status.error)
