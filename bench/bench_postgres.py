"""agentflow and DBOS on one PostgreSQL, with 1, 2 and 4 worker processes, in one run.

usage:
    source .ci/postgres.sh && AGENTFLOW_PG_FSYNC=on postgres_start
    python bench/bench_postgres.py --server "$AGENTFLOW_TEST_POSTGRES_URL" --rounds 3
    postgres_stop

For each round and each worker count N, each system on a fresh database of the same
server (fsync on: every step is flushed before the next one starts), alternating:

- agentflow: N ``agentflow worker --db postgresql://... --app bench.pg_app:engine``
  processes are started and ready; the clock starts, a client process creates W
  instances (one ``create_batch``), the workers claim and run them (S trivial steps
  each), and the clock stops when the client sees all W ``complete``.
- DBOS 3.4 (``bench/dbos_pg_steps.py``, in /tmp/venv-dbos, set up as
  ../shared/baselines/README.md says if missing): N processes, launched and ready; the
  clock starts, each starts W/N workflows of S steps (``DBOS.start_workflow``) and
  waits for their results; the clock stops when the last process is done.

Prints each run, then medians and the ratio agentflow/DBOS per N. The machine has 2
cores shared with the server, so N > 2 measures contention as much as scaling; only
ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.run_side_by_side import DBOS_PY, ensure_dbos  # noqa: E402


def database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def fresh_database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(server, name)


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_line(path: Path, text: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text().count(text) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"workers not ready after {timeout}s:\n{path.read_text()}")
        time.sleep(0.01)


def start_workers(url: str, count: int, concurrency: int, err: Path
                  ) -> list[subprocess.Popen[bytes]]:
    err.write_text("")
    with open(err, "ab") as sink:  # each child keeps its own copy
        return [subprocess.Popen(
            [sys.executable, "-m", "agentflow.cli", "worker", "--db", url,
             "--app", "bench.pg_app:engine", "--concurrency", str(concurrency)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=sink) for _ in range(count)]


async def run_agentflow(url: str, *, workers: int, workflows: int, steps: int,
                        concurrency: int, logdir: Path) -> dict[str, Any]:
    from agentflow import Engine

    client = Engine(url, run_scheduler=False)
    client.register("plan", _never)
    err = logdir / "workers.err"
    async with client:  # migrates the fresh database before the workers start
        procs = start_workers(url, workers, concurrency, err)
        try:
            wait_for_line(err, "agentflow worker ", workers)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                t0 = time.perf_counter()
                await client.binding("plan").create_batch(
                    [{"params": {"steps": steps}} for _ in range(workflows)])
                polls = 0
                while True:
                    polls += 1
                    cur = await conn.execute(
                        "SELECT count(*) FROM instances WHERE status = 'complete'")
                    row = await cur.fetchone()
                    if row is not None and row[0] >= workflows:
                        break
                    await asyncio.sleep(0.005)
                dt = time.perf_counter() - t0
                cur = await conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE output = %s) FROM instances",
                    (str(steps),))
                total, right = await cur.fetchone() or (0, 0)
                cur = await conn.execute("SELECT count(*) FROM steps")
                (journal,), = await cur.fetchall()
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=30)
    if total != workflows or right != workflows or journal != workflows * steps:
        raise SystemExit(f"agentflow: wrong result: {total} instances, {right} right, "
                         f"{journal} journal rows")
    n = workflows * steps
    return {"system": "agentflow", "workers": workers, "workflows": workflows, "steps": n,
            "seconds": round(dt, 4), "steps_per_s": round(n / dt, 1), "polls": polls}


async def _never(event: Any, step: Any) -> None:  # the client registers, never runs
    raise AssertionError("the client runs no workflow")


def run_dbos(url: str, *, workers: int, workflows: int, steps: int) -> dict[str, Any]:
    script = str(HERE / "dbos_pg_steps.py")
    prep = subprocess.run([str(DBOS_PY), script, "--db", url, "--prepare"],
                          capture_output=True, text=True, timeout=300)
    if prep.returncode != 0:
        raise SystemExit(f"DBOS prepare failed:\n{prep.stdout}{prep.stderr}")
    share = [workflows // workers + (1 if k < workflows % workers else 0)
             for k in range(workers)]
    procs = [subprocess.Popen([str(DBOS_PY), script, "--db", url, "--workflows", str(w),
                               "--steps", str(steps)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for w in share]
    try:
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"DBOS worker not ready: {line!r}")
        t0 = time.time()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        ends = []
        for p in procs:
            out, _ = p.communicate(timeout=900)
            result = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
            ends.append(result["end"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    dt = max(ends) - t0
    n = workflows * steps
    return {"system": "dbos", "workers": workers, "workflows": workflows, "steps": n,
            "seconds": round(dt, 4), "steps_per_s": round(n / dt, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default=os.environ.get("AGENTFLOW_TEST_POSTGRES_URL"),
                   help="a PostgreSQL URL whose user may create databases")
    p.add_argument("--workers", default="1,2,4", help="worker process counts")
    p.add_argument("--workflows", type=int, default=1000)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=256,
                   help="agentflow: instances one worker runs at once (its default)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--systems", default="agentflow,dbos")
    p.add_argument("--json", default=None, help="write the summary as JSON to this file")
    a = p.parse_args()
    if not a.server:
        raise SystemExit("--server postgresql://... is required (see the usage)")
    counts = [int(x) for x in a.workers.split(",")]
    systems = a.systems.split(",")
    if "dbos" in systems:
        ensure_dbos()
    with psycopg.connect(a.server, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version'),"
                           " current_setting('fsync'), current_setting('synchronous_commit')"
                           ).fetchone()
    print(f"# PostgreSQL {row[0] if row else '?'}, fsync={row[1] if row else '?'}, "
          f"synchronous_commit={row[2] if row else '?'}; {os.cpu_count()} cores", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    logdir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    for r in range(1, a.rounds + 1):
        for n in counts:
            for system in systems:
                name = f"bench_{system}_{r}_{n}"
                url = fresh_database(a.server, name)
                try:
                    if system == "agentflow":
                        res = asyncio.run(run_agentflow(
                            url, workers=n, workflows=a.workflows, steps=a.steps,
                            concurrency=a.concurrency, logdir=logdir))
                    else:
                        res = run_dbos(url, workers=n, workflows=a.workflows, steps=a.steps)
                finally:
                    drop_database(a.server, name)
                print(f"round {r} {system:<9} x{n} {json.dumps(res)}", flush=True)
                runs.setdefault(f"{system}_{n}", []).append(res)
    med = {k: statistics.median(x["steps_per_s"] for x in v) for k, v in runs.items()}
    summary: dict[str, Any] = {"rounds": a.rounds, "workflows": a.workflows,
                               "steps": a.steps, "medians": med, "ratios": {}, "runs": runs}
    print(f"\n# medians of {a.rounds} rounds, steps/s ({a.workflows} workflows x {a.steps} "
          "steps)")
    for n in counts:
        af, db = med.get(f"agentflow_{n}"), med.get(f"dbos_{n}")
        line = f"{n} worker(s): agentflow {af or 0:>9.1f}  dbos {db or 0:>8.1f}"
        if af and db:
            summary["ratios"][n] = round(af / db, 2)
            line += f"  ratio {af / db:6.2f}x"
        print(line)
    print(json.dumps({k: summary[k] for k in ("medians", "ratios")}))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
