"""The read and steer commands through real subprocesses, as an operator runs them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from agentflow import AgentFlow, Engine, Event, NonRetryableError, Step

PLAN = '''
async def run(event, step):
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    if not decision["payload"]["approved"]:
        return {"status": "rejected", "comment": decision["payload"]["comment"]}
    return {"status": "approved", "by": decision["payload"]["by"]}
'''


def cli(*args: str, db: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    extra = ["--db", f"sqlite:///{db}"] if db is not None else []
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args, *extra],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


async def _setup(db: Path) -> None:
    af = AgentFlow(f"sqlite:///{db}", isolation="inline")
    async with af:
        agent = af.agent("ops-agent")
        await agent.submit_plan("approval", PLAN)
        for iid in ("yes", "no"):
            await (await agent.start("approval", id=iid)).wait(timeout=10)
    engine = Engine(f"sqlite:///{db}")

    @engine.workflow("nap")
    async def nap(event: Event, step: Step) -> str:
        await step.sleep("nap", "1 hour")
        return "rested"

    @engine.workflow("go")
    async def go(event: Event, step: Step) -> object:
        await step.sleep("warm up", "1 hour")
        approved = await step.wait_for_event("approval", type="approval", timeout="7 days")
        return approved["payload"]

    @engine.workflow("signal")
    async def signal_(event: Event, step: Step) -> object:
        return (await step.wait_for_event("go", type="go", timeout="7 days"))["payload"]

    async with engine:
        await (await engine.binding("nap").create(id="napper")).wait(timeout=10)
        await (await engine.binding("go").create(id="early")).wait(timeout=10)
        await (await engine.binding("signal").create(id="signal")).wait(timeout=10)
        await (await engine.binding("nap").create()).wait(timeout=10)  # a generated id


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ops.db"
    asyncio.run(_setup(path))
    return path


@pytest.fixture
def worker(db: Path) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-m", "agentflow.cli", "worker", "--db",
                             f"sqlite:///{db}", "--isolation", "inline", "--poll", "0.05"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_listing_plans_and_instances(db: Path) -> None:
    plans = json.loads(cli("plans", "--json", db=db).stdout)
    assert [(p["agent"], p["name"]) for p in plans] == [("ops-agent", "approval")]
    waiting = json.loads(cli("instances", "--agent", "ops-agent", "--status", "waiting",
                             "--json", db=db).stdout)
    assert sorted(i["id"] for i in waiting) == ["no", "yes"]
    assert all(i["waiting_on"]["type"] == "approval" for i in waiting)
    assert all(i["plan"].startswith("approval@") for i in waiting)
    table = cli("instances", db=db)
    assert table.returncode == 0
    assert "event 'approval'" in table.stdout
    assert "napper" in table.stdout
    assert "--limit" not in table.stderr  # everything fit
    first = cli("instances", "--limit", "1", db=db)
    assert first.returncode == 0 and "showing the newest 1; pass --limit N" in first.stderr
    assert cli("instances", "--limit", "0", db=db).returncode == 2


def test_instance_ids_are_never_cut(db: Path) -> None:
    listed = json.loads(cli("instances", "--workflow", "nap", "--json", db=db).stdout)
    (generated,) = [i["id"] for i in listed if i["id"] != "napper"]
    assert len(generated) == 36
    for env in ({}, {"COLUMNS": "80"}):  # through a pipe, and on an 80-column terminal
        table = cli("instances", db=db, env=env)
        assert table.returncode == 0, table.stderr
        assert generated in table.stdout, (env, table.stdout)
        assert "…" not in table.stdout


def test_show_gives_status_and_timeline(db: Path) -> None:
    shown = json.loads(cli("show", "napper", "--json", db=db).stdout)
    assert shown["status"]["status"] == "waiting"
    assert [h["name"] for h in shown["history"]] == ["nap"]
    text = cli("show", "napper", db=db)
    assert "sleep 'nap' until" in text.stdout


def test_wait_exit_codes(db: Path) -> None:
    assert cli("wait", "napper", "--timeout", "0.3", db=db).returncode == 4
    assert cli("wait", "napper", "--until-waiting", db=db).returncode == 5


def test_a_wait_that_times_out_on_a_queued_instance_says_no_worker_runs(tmp_path: Path
                                                                        ) -> None:
    # Like start and approve: "still queued" alone leaves the user guessing why.
    db = tmp_path / "idle.db"

    async def queue_one() -> None:
        async with Engine(f"sqlite:///{db}", run_scheduler=False) as engine:
            async def noop(event: Event, step: Step) -> None:
                return None
            engine.register("noop", noop)
            await engine.binding("noop").create(id="idle")

    asyncio.run(queue_one())
    out = cli("wait", "idle", "--timeout", "0", db=db)
    assert out.returncode == 4
    assert out.stderr.splitlines()[0] == "agentflow: instance 'idle' still queued after 0s"
    assert "no worker is running" in out.stderr and "agentflow worker" in out.stderr


def test_wait_json_on_timeout_prints_the_status(db: Path) -> None:
    out = cli("wait", "signal", "--timeout", "0", "--json", db=db)
    assert out.returncode == 4
    status = json.loads(out.stdout)
    assert (status["status"], status["waiting_on"]["type"]) == ("waiting", "go")
    assert out.stderr == "agentflow: instance 'signal' still waiting after 0s\n"
    for bad in ("-5", "nan"):
        refused = cli("wait", "signal", "--timeout", bad, db=db)
        assert refused.returncode == 2
        assert refused.stderr.startswith("agentflow: --timeout must be 0 or more seconds")


def test_errors_are_one_line(db: Path, tmp_path: Path) -> None:
    for args, code, text in [
        (("show", "missing"), 3, "no instance with id 'missing'"),
        (("send-event", "napper", "poke", "{not json"), 2, "not valid JSON"),
        (("send-event", "napper", "poke", "[" * 50_000 + "]" * 50_000), 2, "nested too deeply"),
        (("send-event", "napper", "bad type!", "{}"), 2, "event type"),
        (("restart", "napper", "--from-step", "zzz"), 2, "no step named 'zzz'"),
    ]:
        out = cli(*args, db=db)
        assert out.returncode == code, (args, out.stderr)
        assert out.stderr.startswith("agentflow: ")
        assert text in out.stderr
        assert out.stderr.count("\n") == 1
    for command in (("instances",), ("watch", "--count", "1")):
        # watch made the file, schema and all, and then waited silently
        missing = cli(*command, db=tmp_path / "nowhere.db")
        assert missing.returncode == 3, (command, missing.stderr)
        assert "no agentflow database" in missing.stderr
        assert not (tmp_path / "nowhere.db").exists()


def test_files_without_an_agentflow_database_are_refused_untouched(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    header_only = tmp_path / "header.db"  # a SQLite file with no table in it
    sqlite3.connect(header_only).execute("PRAGMA journal_mode = WAL").fetchone()
    foreign = tmp_path / "users.db"
    with closing(sqlite3.connect(foreign)) as conn, conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    for path, code, text in [(empty, 3, "holds no agentflow database"),
                             (header_only, 3, "holds no agentflow database"),
                             (foreign, 2, "is not an agentflow database")]:
        for command in (("plans",), ("instances",), ("show", "x"), ("pause", "x")):
            out = cli(*command, db=path)
            assert out.returncode == code, (path, command, out.stderr)
            assert text in out.stderr
            assert out.stderr.count("\n") == 1
    assert empty.stat().st_size == 0
    for path, tables in [(header_only, []), (foreign, ["users"])]:
        with closing(sqlite3.connect(path)) as conn:
            assert [t for (t,) in conn.execute("SELECT name FROM sqlite_master")] == tables


def test_a_broken_database_has_its_own_exit_code(tmp_path: Path) -> None:
    # 1 means the instance failed; a database that cannot be read is not that.
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    out = cli("wait", "x", db=garbage)
    assert out.returncode == 6, out.stderr
    assert out.stderr == (f"agentflow: cannot use the database {str(garbage)!r}: file is "
                          "not a database\n")
    unreachable = subprocess.run(
        [sys.executable, "-m", "agentflow.cli", "wait", "x", "--db",
         "postgresql://u:secret@127.0.0.1:1/db"], capture_output=True, text=True, timeout=60)
    if "PostgreSQL driver" not in unreachable.stderr:  # psycopg is installed
        assert unreachable.returncode == 6, unreachable.stderr
        assert unreachable.stderr.count("\n") == 1
        assert "Connection refused" in unreachable.stderr
        assert "secret" not in unreachable.stderr


def _copy(db: Path, to: Path) -> Path:
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(to)) as copy:
        source.backup(copy)
    return to


def _opened_by(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has ``path`` open (then it waits on its lock)."""
    with contextlib.suppress(FileNotFoundError):
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
                   for fd in os.listdir(f"/proc/{pid}/fd"))
    return False


def _interrupt_when_waiting(args: list[str], db: Path) -> tuple[int, float]:
    """Run the command; once it has the database open, Ctrl-C it: (exit code, seconds
    it took to end after Ctrl-C)."""
    proc = subprocess.Popen([sys.executable, "-m", "agentflow.cli", *args, "--db",
                             f"sqlite:///{db}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not _opened_by(proc.pid, db) and proc.poll() is None:
            assert time.monotonic() < deadline, "the command never opened the database"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in err
    return proc.returncode, time.monotonic() - interrupted


def test_a_locked_database_fails_fast_and_ctrl_c_stops_at_once(db: Path, tmp_path: Path
                                                              ) -> None:
    locked = _copy(db, tmp_path / "locked.db")
    with closing(sqlite3.connect(locked, isolation_level=None)) as holder:
        holder.execute("PRAGMA journal_mode = WAL").fetchone()
        holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
        shown = cli("show", "napper", db=locked)  # reading needs no lock
        assert shown.returncode == 0, shown.stderr
        started = time.monotonic()
        paused = cli("pause", "napper", db=locked)
        assert time.monotonic() - started < 20  # not the store's minute of retrying
        assert paused.returncode == 6, paused.stderr
        assert paused.stderr.startswith("agentflow: database is locked: ")
        assert "nothing was changed" in paused.stderr
        assert paused.stderr.count("\n") == 1
        code, took = _interrupt_when_waiting(["pause", "napper"], locked)
        assert (code, took < 3) == (130, True)
        holder.execute("ROLLBACK")
    assert json.loads(cli("show", "napper", "--json", db=locked).stdout)["status"][
        "status"] == "waiting"
    # In rollback-journal mode even a read waits, in a thread Ctrl-C cannot cancel.
    journal = _copy(db, tmp_path / "journal.db")
    with closing(sqlite3.connect(journal, isolation_level=None)) as holder:
        holder.execute("PRAGMA journal_mode = DELETE").fetchone()
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE instances SET updated_at = updated_at")
        code, took = _interrupt_when_waiting(["instances"], journal)
        assert (code, took < 3) == (130, True)
        holder.execute("ROLLBACK")


def test_pause_resume_terminate_restart(db: Path) -> None:
    assert cli("pause", "napper", db=db).stdout.strip() == "paused napper"
    assert json.loads(cli("show", "napper", "--json", db=db).stdout)["status"]["status"] == (
        "paused")
    assert cli("resume", "napper", "--json", db=db).returncode == 0
    assert cli("terminate", "napper", db=db).returncode == 0
    assert cli("wait", "napper", db=db).returncode == 1  # terminated
    finished = cli("resume", "napper", db=db)  # cannot resume a finished one
    assert finished.returncode == 2
    assert finished.stderr == ("agentflow: cannot resume instance 'napper': it is terminated. "
                               "Run `agentflow restart napper` to run it again\n")
    assert cli("restart", "napper", db=db).stdout.strip() == "restarted napper"


def test_approve_and_reject_as_a_human(db: Path, worker: None) -> None:
    unconfirmed = subprocess.run(
        [sys.executable, "-m", "agentflow.cli", "approve", "yes", "--db", f"sqlite:///{db}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    assert unconfirmed.stdout.startswith("A plan waits for a person")  # shown first
    with sqlite3.connect(db) as conn:  # nobody confirmed: nothing was sent
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    approved = cli("approve", "yes", "--yes", db=db)
    assert approved.stdout.splitlines()[-1] == "approved yes"
    assert '  instance  "yes"' in approved.stdout and "Params (JSON):" in approved.stdout
    assert cli("reject", "no", "--comment", "too risky", "--yes", db=db).returncode == 0
    done = cli("wait", "yes", "--json", "--timeout", "30", db=db)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"] == {"status": "approved", "by": "human"}
    rejected = json.loads(cli("wait", "no", "--json", "--timeout", "30", db=db).stdout)
    assert rejected["output"] == {"status": "rejected", "comment": "too risky"}


def test_approve_refuses_an_instance_that_does_not_wait_for_an_approval(db: Path) -> None:
    # "early" sleeps before it asks: an approval now would be buffered and answer a
    # question nobody has seen yet. "signal" waits for a "go" event, not an approval.
    for verb, iid, why in [("approve", "early", "it waits on sleep 'warm up' until"),
                           ("reject", "early", "it waits on sleep 'warm up' until"),
                           ("approve", "signal", "it waits for an event of type 'go'")]:
        out = cli(verb, iid, "--json", db=db)
        assert out.returncode == 2, out.stderr
        assert out.stdout == ""
        assert out.stderr.startswith(f"agentflow: instance {iid!r} does not wait for an "
                                     "approval")
        assert why in out.stderr
        assert "Nothing was sent" in out.stderr
        assert out.stderr.count("\n") == 1
    assert "send-event signal go" in cli("approve", "signal", db=db).stderr
    with sqlite3.connect(db) as conn:  # nothing was buffered for later
        assert conn.execute("SELECT count(*) FROM events WHERE instance_id IN "
                            "('early', 'signal')").fetchone() == (0,)


# Step names refuse control characters (the engine checks them), so the terminal escape
# rides in the error message, which a plan controls too.
STEP = "[dim]secret step[/dim] [/] [8mhidden"
ERROR = "list index [/] out of range\nstatus: complete \x1b[8mhidden"


async def _setup_hostile_text(db: Path) -> None:
    engine = Engine(f"sqlite:///{db}")

    @engine.workflow("hostile")
    async def hostile(event: Event, step: Step) -> None:
        await step.do(STEP, lambda: "[red]token=abc[/red] [link=http://evil]click[/link]")

        def fail() -> None:
            raise NonRetryableError(ERROR)
        await step.do("fail", fail)

    @engine.workflow("napper")
    async def napper(event: Event, step: Step) -> None:
        await step.sleep("nap [/]", "1 hour")

    async with engine:
        await (await engine.binding("hostile").create(id="hostile")).wait(timeout=10)
        await (await engine.binding("napper").create(id="napper")).wait(timeout=10)


def test_text_from_plans_is_printed_literally(tmp_path: Path) -> None:
    # Plans are written by agents: their text must reach the operator as it is, neither
    # read as Rich markup (a "[/]" crashed the whole listing) nor obeyed by the terminal.
    db = tmp_path / "hostile.db"
    asyncio.run(_setup_hostile_text(db))
    wide = {"COLUMNS": "250"}
    listing = cli("instances", db=db, env=wide)
    assert listing.returncode == 0, listing.stderr
    assert "hostile" in listing.stdout
    assert "sleep 'nap [/]' until" in listing.stdout
    shown = cli("show", "hostile", db=db, env=wide)
    assert shown.returncode == 0, shown.stderr
    assert "[dim]secret step[/dim] [/] [8mhidden" in shown.stdout
    assert '"[red]token=abc[/red] [link=http://evil]click[/link]"' in shown.stdout
    assert "error: NonRetryableError: list index [/] out of range\\nstatus: complete" in (
        shown.stdout)
    assert "\x1b" not in shown.stdout
    assert "\nstatus: complete" not in shown.stdout  # a plan cannot fake a line
    waited = cli("wait", "hostile", db=db)
    assert waited.returncode == 1
    assert "out of range\\nstatus: complete" in waited.stdout


def test_doctor_reports_every_layer() -> None:
    out = cli("doctor", "--json")
    layers = {layer["layer"]: layer for layer in json.loads(out.stdout)}
    assert {"validator", "restricted_python", "rlimits", "seccomp", "landlock"} <= set(layers)
    assert out.returncode == (0 if all(v["available"] for v in layers.values()) else 1)
