"""Authoring and housekeeping from the shell, through real subprocesses: validate,
submit, start, restart --upgrade, the --plan filter, schedules, prune, --version,
``python -m agentflow``, one timestamp format, closed pipes, and the no-worker note."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PLAN = '''
async def run(event, step):
    doubled = await step.do("double", lambda: event.payload["n"] * 2)
    go = await step.wait_for_event("go", type="go", timeout="1 hour")
    return {"n": doubled, "go": go["payload"]}
'''
BAD = '''import os

async def run(event, step):
    return 1
'''
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def run(*args: str, db: Path | None = None, module: str = "agentflow",
        stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    extra = ["--db", f"sqlite:///{db}"] if db is not None else []
    return subprocess.run([sys.executable, "-m", module, *args, *extra], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "plan.py").write_text(PLAN)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "params.json").write_text('{"n": 21}')
    return tmp_path


@pytest.fixture
def worker(files: Path) -> Iterator[subprocess.Popen[str]]:
    """A real worker on the test's database (inline plans: the test is about the CLI)."""
    db = files / "shell.db"
    proc = subprocess.Popen([sys.executable, "-m", "agentflow", "worker", "--isolation",
                             "inline", "--db", f"sqlite:///{db}"], stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "agentflow worker ... on ...": it runs
        assert "agentflow worker" in line, line
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()


def wait_for(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_version_and_python_m_agentflow() -> None:
    for module in ("agentflow", "agentflow.cli"):
        out = run("--version", module=module)
        assert out.returncode == 0
        assert re.fullmatch(r"agentflow \d+\.\d+\.\d+\S*\n", out.stdout), out.stdout


def test_validate_prints_located_diagnostics_and_exits_1(files: Path) -> None:
    good = run("validate", str(files / "plan.py"))
    assert good.returncode == 0, good.stderr
    bad = run("validate", str(files / "bad.py"))
    assert bad.returncode == 1
    assert f"{files / 'bad.py'}:1:1: AF301" in bad.stdout
    assert "fix:" in bad.stdout
    as_json = json.loads(run("validate", str(files / "bad.py"), "--json", "--agent",
                             "a1").stdout)
    assert as_json["ok"] is False and as_json["diagnostics"][0]["code"] == "AF301"
    from_stdin = run("validate", "-", stdin=BAD)
    assert from_stdin.returncode == 1 and "AF301" in from_stdin.stdout
    missing = run("validate", str(files / "nope.py"))
    assert missing.returncode == 3 and "no plan file" in missing.stderr


def test_submit_start_and_upgrade_from_the_shell(files: Path,
                                                 worker: subprocess.Popen[str]) -> None:
    db = files / "shell.db"
    refused = run("submit", "double", str(files / "bad.py"), "--agent", "a1", db=db)
    assert refused.returncode == 2 and "was not stored" in refused.stderr
    assert "AF301" in refused.stderr
    sub = run("submit", "double", str(files / "plan.py"), "--agent", "a1", "--json", db=db)
    assert sub.returncode == 0, sub.stderr
    v1 = json.loads(sub.stdout)
    assert ISO_Z.match(v1["created_at"])
    started = run("start", "double", "--agent", "a1", "--params", f"@{files / 'params.json'}",
                  db=db)
    assert started.returncode == 0, started.stderr
    iid = started.stdout.strip()
    assert "no worker" not in started.stderr  # one runs
    waited = run("wait", iid, "--until-waiting", "--json", db=db)
    assert waited.returncode == 5, waited.stderr
    inline = run("start", "double", "--agent", "a1", "--params", '{"n": 1}', "--id", "inl",
                 db=db)
    assert inline.returncode == 0 and inline.stdout.strip() == "inl"
    bad_params = run("start", "double", "--agent", "a1", "--params", "{n: 1}", db=db)
    assert bad_params.returncode == 2 and "--params is not valid JSON" in bad_params.stderr

    # A new version; --upgrade moves the instance to it, plain restart keeps its own.
    (files / "plan3.py").write_text(PLAN.replace("* 2", "* 3"))
    v2 = json.loads(run("submit", "double", str(files / "plan3.py"), "--agent", "a1",
                        "--json", db=db).stdout)
    assert v2["version"] != v1["version"]
    up = run("restart", iid, "--upgrade", db=db)
    assert up.returncode == 0, up.stderr
    assert run("wait", iid, "--until-waiting", db=db).returncode == 5
    assert run("send-event", iid, "go", "true", db=db).returncode == 0
    done = json.loads(run("wait", iid, "--json", db=db).stdout)
    assert done["status"] == "complete" and done["output"] == {"n": 63, "go": True}
    shown = json.loads(run("show", iid, "--json", db=db).stdout)
    assert shown["plan"] == f"double@{v2['version'][:8]}"

    # --plan, and --workflow with the plan's name (no internal `agentflow.plan`).
    by_plan = json.loads(run("instances", "--plan", "double", "--json", db=db).stdout)
    by_workflow = json.loads(run("instances", "--workflow", "double", "--json",
                                 db=db).stdout)
    assert {i["id"] for i in by_plan} == {i["id"] for i in by_workflow} == {iid, "inl"}
    assert json.loads(run("instances", "--plan", "other", "--json", db=db).stdout) == []
    for item in by_plan:  # one timestamp format in every JSON output
        assert ISO_Z.match(item["created_at"]) and ISO_Z.match(item["updated_at"])
    plans = json.loads(run("plans", "--json", db=db).stdout)
    assert ISO_Z.match(plans[0]["created_at"]), plans


def test_restart_upgrade_refuses_a_trusted_workflow(files: Path) -> None:
    import asyncio

    from agentflow import Engine

    db = files / "wf.db"

    async def setup() -> None:
        engine = Engine(f"sqlite:///{db}", run_scheduler=False)
        engine.register("noop", _noop)
        async with engine:
            await engine.binding("noop").create(id="wf1")
    asyncio.run(setup())
    out = run("restart", "wf1", "--upgrade", db=db)
    assert out.returncode == 2 and "not an agent's plan" in out.stderr


async def _noop(event: object, step: object) -> None:
    return None


def test_steering_with_no_worker_says_nothing_runs_it(files: Path) -> None:
    db = files / "idle.db"
    assert run("submit", "double", str(files / "plan.py"), "--agent", "a1", db=db
               ).returncode == 0
    started = run("start", "double", "--agent", "a1", "--params", '{"n": 1}', "--id", "i1",
                  db=db)
    assert started.returncode == 0
    assert "no worker is running" in started.stderr
    assert "nothing runs instance 'i1'" in started.stderr
    sent = run("send-event", "i1", "go", "1", "--json", db=db)
    assert sent.returncode == 0
    body = json.loads(sent.stdout)
    assert body["ok"] is True and body["worker_running"] is False
    assert "no worker is running" in sent.stderr


def test_a_closed_pipe_ends_quietly(files: Path, worker: subprocess.Popen[str]) -> None:
    db = files / "shell.db"
    run("submit", "double", str(files / "plan.py"), "--agent", "a1", db=db)
    for k in range(30):
        run("start", "double", "--agent", "a1", "--params", '{"n": 1}', "--id", f"p{k}",
            db=db)
    wait_for(lambda: run("show", "p29", "--json", db=db).returncode == 0, "p29")
    for command in (["show", "p0"], ["instances"], ["instances", "--json"]):
        shell = (f"set -o pipefail; {sys.executable} -m agentflow {' '.join(command)} "
                 f"--db sqlite:///{db} | head -1")
        done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "COLUMNS": "80"})
        assert done.returncode in (0, 141), (command, done.returncode, done.stderr)
        assert done.stderr == "", (command, done.stderr)
        assert len(done.stdout.splitlines()) == 1


def test_schedules_from_the_shell(files: Path, worker: subprocess.Popen[str]) -> None:
    db = files / "shell.db"
    run("submit", "double", str(files / "plan.py"), "--agent", "a1", db=db)
    added = run("schedules", "add", "tick", "--agent", "a1", "--plan", "double", "--every",
                "1 second", "--params", '{"n": 5}', "--overlap", "allow", "--json", db=db)
    assert added.returncode == 0, added.stderr
    sched = json.loads(added.stdout)
    assert sched["agent"] == "a1" and sched["plan"] == "double" and sched["every"] == 1.0
    assert ISO_Z.match(sched["next_fire_at"])

    def fired() -> bool:
        items = json.loads(run("instances", "--plan", "double", "--json", db=db).stdout)
        return len(items) >= 2
    wait_for(fired, "two fires")
    listed = json.loads(run("schedules", "--json", db=db).stdout)
    assert [s["name"] for s in listed] == ["tick"]
    assert listed[0]["last_instance_id"].startswith("tick-")
    assert run("schedules", "pause", "tick", "--agent", "a1", db=db).returncode == 0
    assert json.loads(run("schedules", "list", "--json", db=db).stdout)[0]["paused"] is True
    nxt = run("schedules", "next", "tick", "--agent", "a1", "--count", "3", db=db)
    assert nxt.returncode == 0 and len(nxt.stdout.splitlines()) == 3
    assert run("schedules", "delete", "tick", "--agent", "a1", db=db).returncode == 0
    assert json.loads(run("schedules", "--json", db=db).stdout) == []
    gone = run("schedules", "pause", "tick", "--agent", "a1", db=db)
    assert gone.returncode == 3 and "no schedule named 'tick'" in gone.stderr
    cron = run("schedules", "add", "daily", "--agent", "a1", "--plan", "double", "--cron",
               "30 2 * * *", "--tz", "Europe/Berlin", db=db)
    assert cron.returncode == 0, cron.stderr
    wrong = run("schedules", "add", "x", "--agent", "a1", "--plan", "double", "--cron",
                "61 * * * *", db=db)
    assert wrong.returncode == 2 and "out of range" in wrong.stderr


def test_prune_delete_and_retention_from_the_shell(files: Path) -> None:
    import asyncio

    from agentflow import Engine

    db = files / "prune.db"

    async def setup() -> None:
        engine = Engine(f"sqlite:///{db}")
        engine.register("noop", _noop)
        async with engine:
            for k in range(5):
                await (await engine.binding("noop").create(id=f"done{k}")).wait(timeout=30)
    asyncio.run(setup())
    nothing = run("prune", db=db)
    assert nothing.returncode == 2 and "no retention policy" in nothing.stderr
    assert run("delete", "done0", db=db).returncode == 0
    assert run("show", "done0", db=db).returncode == 3
    pruned = json.loads(run("prune", "--status", "complete", "--json", db=db).stdout)
    assert pruned["deleted"] == 4
    assert run("retention", "--keep", "30 days", db=db).returncode == 0
    assert run("retention", "--keep", "1 day", "--agent", "a1", db=db).returncode == 0
    policies = json.loads(run("retention", "--json", db=db).stdout)
    assert policies == [{"agent": None, "keep_seconds": 2592000.0},
                        {"agent": "a1", "keep_seconds": 86400.0}]
    # In words a person reads, not "2.592e+06s".
    assert run("retention", db=db).stdout.splitlines() == [
        "(default): keep finished instances 30 days", "a1: keep finished instances 1 day"]
    assert json.loads(run("prune", "--json", db=db).stdout)["deleted"] == 0
    assert run("prune", "--vacuum", "--older-than", "1 second", db=db).returncode == 0
