"""The whole story over stdio, against real server processes with confined workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mcp_server import parse_tokens
from mcp_server.__main__ import main
from tests.mcp_server.conftest import (
    APPROVAL_PLAN,
    BAD_PLAN,
    REPO,
    elicitation,
    stdio_params,
    structured,
    text,
)


async def test_story_validate_fix_run_approve_and_survive_restarts(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/story.db"
    params = stdio_params(db)  # the default isolation: a confined worker process

    # Session 1: a client that cannot ask its user (no elicitation).
    async with Client(params, mode="auto") as c:
        bad = structured(await c.call_tool("validate_plan", {"source": BAD_PLAN}))
        assert not bad["ok"] and {"AF301", "AF201"} <= {d["code"] for d in bad["diagnostics"]}
        fixed = structured(await c.call_tool("validate_plan", {"source": APPROVAL_PLAN}))
        assert fixed["ok"] and fixed["diagnostics"] == []
        plan = structured(await c.call_tool("submit_plan", {"name": "total",
                                                            "source": APPROVAL_PLAN}))["plan"]
        started = structured(await c.call_tool("start_instance", {
            "plan": "total", "params": {"numbers": [4, 5, 6]}, "id": "story-1"}))
        assert started["instance"]["version"] == plan["version"]
        waiting = structured(await c.call_tool("wait_for_instance",
                                               {"instance_id": "story-1"}))["instance"]
        assert waiting["status"] == "waiting"
        assert waiting["waiting_on"]["kind"] == "event"
        assert waiting["waiting_on"]["type"] == "approval"
        pending = await c.call_tool("approve", {"instance_id": "story-1"})
        assert structured(pending)["outcome"] == "pending_human"
        assert "agentflow approve story-1" in text(pending)

    # Session 2: a new server process; the client shows elicitations to a person.
    seen: list[str] = []
    person = elicitation("accept", {"decision": "approve", "comment": "go"}, seen)
    async with Client(params, mode="legacy", elicitation_callback=person) as c:
        still = structured(await c.call_tool("get_instance", {"instance_id": "story-1"}))
        assert still["instance"]["status"] == "waiting"
        approved = structured(await c.call_tool("approve", {"instance_id": "story-1"}))
        assert approved["outcome"] == "approved" and len(seen) == 1
        done = structured(await c.call_tool("wait_for_instance",
                                            {"instance_id": "story-1"}))["instance"]
        assert done["status"] == "complete"
        assert done["output"] == {"status": "approved", "total": 15, "by": "human"}
        history = structured(await c.call_tool("get_history", {"instance_id": "story-1"}))

    # Session 3: yet another process finds the same plans, instances and history.
    async with Client(params, mode="auto") as c:
        plans = structured(await c.call_tool("list_plans", {}))["plans"]
        assert [(p["name"], p["version"]) for p in plans] == [("total", plan["version"])]
        listed = structured(await c.call_tool("list_instances", {}))["instances"]
        assert [(i["id"], i["status"]) for i in listed] == [("story-1", "complete")]
        again = structured(await c.call_tool("get_history", {"instance_id": "story-1"}))
        assert again["steps"] == history["steps"]
        assert [s["name"] for s in again["steps"]] == ["compute", "approval"]
        source = (await c.read_resource("agentflow://plans/total")).contents[0]
        assert source.text == APPROVAL_PLAN  # type: ignore[union-attr]


@pytest.mark.parametrize(("args", "message"), [
    ([], "--agent ID or $AGENTFLOW_AGENT"),
    (["--agent", "bad agent!"], "is invalid"),
    (["--agent", "a", "--token", "t=a"], "--token applies to --http"),
    (["--http", "127.0.0.1:1"], "at least one bearer token"),
    (["--http", "nonsense"], "HOST:PORT"),
    (["--http", "127.0.0.1:1", "--agent", "a"], "--agent applies to stdio"),
    (["--http", "127.0.0.1:1", "--token", "no-equals-sign"], "TOKEN=AGENT_ID"),
    (["--agent", "a", "--human-only", "bad type!"], "not a valid event type"),
])
def test_command_line_mistakes_are_one_line_and_exit_2(
        args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AGENTFLOW_AGENT", "AGENTFLOW_MCP_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_tokens_come_from_the_environment_too() -> None:
    tokens = parse_tokens(["a-token=alice", "x=y=bob"], '{"env-token": "carol"}')
    assert tokens == {"a-token": "alice", "x=y": "bob", "env-token": "carol"}
    with pytest.raises(ValueError, match="JSON object"):
        parse_tokens([], '["not", "an", "object"]')


def test_the_module_runs_as_a_command() -> None:
    out = subprocess.run([sys.executable, "-m", "mcp_server", "--help"], capture_output=True,
                         text=True, cwd=REPO, timeout=30)
    assert out.returncode == 0 and "--http HOST:PORT" in out.stdout


def readme_client_config() -> str:
    """The JSON config the README shows for MCP clients other than Claude Code."""
    blocks = re.findall(r"```json\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    configs = [b for b in blocks if '"mcpServers"' in b]
    assert len(configs) == 1, "README.md should show one mcpServers JSON config"
    return configs[0]


async def test_the_json_client_config_starts_the_console_script(tmp_path: Path) -> None:
    entry = json.loads(readme_client_config())["mcpServers"]["agentflow"]
    command = shutil.which(entry["command"])
    assert command, "agentflow-mcp is not on PATH: pip install -e ."
    env = {**os.environ, **entry["env"], "PYTHONWARNINGS": "ignore",
           "AGENTFLOW_DB": f"sqlite:///{tmp_path}/client.db"}
    params = StdioServerParameters(command=command, args=entry.get("args", []), env=env,
                                   cwd=str(tmp_path))
    async with Client(params) as c:
        assert structured(await c.call_tool("list_plans", {}))["plans"] == []
        assert structured(await c.call_tool("submit_plan", {"name": "p",
                                                            "source": APPROVAL_PLAN}))["ok"]
    assert (tmp_path / "client.db").exists()


KV_PLAN = '''async def run(event, step):
    await step.do("remember", lambda: env.kv.set("seen", event.payload))
    return await step.do("recall", lambda: env.kv.get("seen"))
'''

GRANTS_APP = '''from agentflow import AgentFlow
from agentflow.capabilities import KVCapability

app = AgentFlow()
app.agent("alice", capabilities={"kv": KVCapability()})
'''


async def test_app_gives_the_servers_plans_the_hosts_grants(tmp_path: Path) -> None:
    (tmp_path / "grants_app.py").write_text(GRANTS_APP)
    db = f"sqlite:///{tmp_path}/grants.db"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "AGENTFLOW_AGENT": "alice",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}

    def server(*extra: str) -> StdioServerParameters:
        return StdioServerParameters(command=sys.executable, env=env, cwd=str(REPO),
                                     args=["-m", "mcp_server", "--db", db,
                                           "--isolation", "inline", *extra])

    async with Client(server(), mode="auto") as c:  # no grants here: the step fails
        structured(await c.call_tool("submit_plan", {"name": "kv", "source": KV_PLAN}))
        structured(await c.call_tool("start_instance", {"plan": "kv", "id": "no-grant",
                                                         "params": {"v": 1}}))
        denied = structured(await c.call_tool("wait_for_instance",
                                              {"instance_id": "no-grant"}))
        # No retry can grant it: the step fails at once (it was retried for minutes).
        assert denied["instance"]["status"] == "errored"
        assert denied["instance"]["error"]["step"] == "remember"
        history = structured(await c.call_tool("get_history", {"instance_id": "no-grant"}))
        assert "capability 'kv' was not granted" in json.dumps(history["steps"])
        assert history["steps"][0]["attempts"] == 1
    async with Client(server("--app", "grants_app:app"), mode="auto") as c:
        structured(await c.call_tool("start_instance", {"plan": "kv", "id": "granted",
                                                         "params": {"v": 7}}))
        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "granted"}))
        assert done["instance"]["status"] == "complete"
        assert done["instance"]["output"] == {"v": 7}


def test_no_run_and_app_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--agent", "a", "--no-run", "--app", "grants_app:app"]) == 2
    assert "give --app to the workers" in capsys.readouterr().err
    assert main(["--agent", "a", "--app", "no_such_module_x:app"]) == 2
    assert "cannot import 'no_such_module_x'" in capsys.readouterr().err


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_stops_the_server_while_its_client_keeps_stdin_open(
        tmp_path: Path, sig: signal.Signals, code: int) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "AGENTFLOW_AGENT": "alice"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--db", f"sqlite:///{tmp_path}/sig.db"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        cwd=str(REPO))
    try:
        banner = proc.stderr.readline().decode()  # type: ignore[union-attr]
        assert "on stdio" in banner, banner
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code  # stdin is still open: it must not matter
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
