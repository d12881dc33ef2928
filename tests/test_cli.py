"""The command line through a real subprocess, as a new user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def agentflow(*args: str, cwd: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("agentflow")
    cmd = [exe] if exe else [sys.executable, "-m", "agentflow.cli"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_demo_runs_end_to_end_on_agentflow_db_in_the_working_directory(tmp_path: Path
                                                                       ) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENTFLOW_DB"}
    out = subprocess.run([shutil.which("agentflow") or "agentflow", "demo"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "status: complete" in out.stdout
    assert "output: hello Ada: sent welcome mail to Ada, approved=True" in out.stdout
    assert "attempts=2" in out.stdout  # the flaky step was retried on a durable timer
    assert (tmp_path / "agentflow.db").exists()


def test_db_from_environment(tmp_path: Path) -> None:
    out = agentflow("demo", "--name", "Grace", cwd=tmp_path,
                    env={"AGENTFLOW_DB": f"sqlite:///{tmp_path}/env.db"})
    assert out.returncode == 0, out.stderr
    assert "hello Grace" in out.stdout
    assert (tmp_path / "env.db").exists()


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    out = agentflow("worker", "--app", "no_such_module:engine", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "cannot import 'no_such_module'" in out.stderr
    out = agentflow("worker", "--app", "json:dumps", cwd=tmp_path)
    assert out.returncode == 2
    assert "neither an agentflow Engine nor an AgentFlow" in out.stderr
    out = agentflow("demo", "--db", "mysql://nope", cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    out = agentflow("demo", "--db", f"sqlite:///{tmp_path}/garbage.db", cwd=tmp_path)
    assert out.returncode == 6  # the database cannot be used, not "the demo failed"
    assert "file is not a database" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("agentflow: ")


def test_help_documents_every_exit_code(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    for command in ((), ("wait",), ("pause",)):
        text = agentflow(*command, "--help", cwd=tmp_path).stdout
        for code in ("0", "1", "2", "3", "4", "5", "6", "130"):
            assert f"\n  {code} " in text, (command, code)
            assert f"| {code} |" in section, code


def test_show_keeps_the_demos_failed_attempt_after_its_retry_succeeded(tmp_path: Path
                                                                       ) -> None:
    """The demo's first mail attempt fails ("mail server busy") and its retry succeeds:
    the failure stays in `agentflow show`, as text and as --json."""
    import json
    import re

    db = f"sqlite:///{tmp_path}/show.db"
    out = agentflow("demo", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    match = re.search(r"created instance (\S+)", out.stdout)
    assert match, out.stdout
    shown = agentflow("show", match.group(1), "--db", db, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "attempt 1 of 'send mail' failed at" in shown.stdout
    assert "ConnectionError: mail server busy" in shown.stdout
    as_json = agentflow("show", match.group(1), "--db", db, "--json", cwd=tmp_path)
    history = json.loads(as_json.stdout)["history"]
    send = next(h for h in history if h["name"] == "send mail")
    assert send["status"] == "ok" and send["attempts"] == 2
    assert [a["error"] for a in send["attempt_history"]] == [
        {"name": "ConnectionError", "message": "mail server busy"}, None]


def test_show_names_a_plan_errors_line_and_what_it_printed(tmp_path: Path) -> None:
    import asyncio

    from agentflow import AgentFlow

    plan = ('def parse(text):\n'
            '    return int(text)\n\n\n'
            'async def run(event, step):\n'
            '    print("fetching")\n'
            '    raw = await step.do("fetch", lambda: "12x")\n'
            '    return parse(raw)\n')
    db = f"sqlite:///{tmp_path}/plans.db"

    async def make() -> str:
        async with AgentFlow(db, isolation="inline") as af:
            agent = af.agent("cli")
            await agent.submit_plan("p", plan)
            inst = await agent.start("p")
            assert (await inst.wait(timeout=30)).status == "errored"
            return inst.id

    instance_id = asyncio.run(make())
    shown = agentflow("show", instance_id, "--db", db, cwd=tmp_path, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "ValueError: invalid literal for int()" in shown.stdout
    assert "at: plan line 2, in parse, after step 'fetch': return int(text)" in shown.stdout
    assert "log before 'fetch': fetching" in shown.stdout
