"""A million sleeping instances in one SQLite file: worker memory and timer lateness.

usage: python bench/bench_timers.py [--sleepers 1000000] [--due 10000] [--rate 1000]

1. Builds the file: ``--sleepers`` instances parked on ``step.sleep_until`` (the state
   the engine leaves after running them: a waiting instance row and its journaled sleep;
   written with plain sqlite3 so that building a million takes seconds, not minutes).
   ``--due`` of them fall due at ``--rate`` per second starting a few seconds after the
   worker starts; the rest sleep for days.
2. Starts ``agentflow worker`` on an empty file and on the big file, and samples each
   one's RSS: the goal is that the big file's worker stays within 50 MB of the idle one.
3. Each due instance records when it woke (``step.do("fired", time.time)``); lateness is
   that minus its wake time. Goal: p99 < 100 ms.
Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agentflow.store._migrations import MIGRATIONS  # noqa: E402


def build(path: Path, sleepers: int, due: int, start: float, rate: float) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN")
    for number, statements in MIGRATIONS:
        for s in statements:
            db.execute(s)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute("COMMIT")
    batch = 50_000
    now = time.time()
    for first in range(0, sleepers, batch):
        rows, steps = [], []
        for i in range(first, min(first + batch, sleepers)):
            at = start + i / rate if i < due else now + 86400 * (1 + i % 300)
            iid = f"s{i:07d}"
            waiting = json.dumps({"kind": "sleep", "step": "wake", "until": at, "types": []})
            rows.append((iid, "sleeper", "waiting", json.dumps({"at": at}), now, now,
                         waiting, at))
            steps.append((iid, 1, "wake", 1, "sleep", "waiting", 1, now, at))
        db.execute("BEGIN")
        db.executemany("INSERT INTO instances (id, workflow, status, payload, created_at,"
                       " updated_at, waiting_on, due_at, fence) VALUES (?,?,?,?,?,?,?,?,1)", rows)
        db.executemany("INSERT INTO steps (instance_id, seq, name, n, kind, status, attempts,"
                       " started_at, wake_at) VALUES (?,?,?,?,?,?,?,?,?)", steps)
        db.execute("COMMIT")
    db.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentflow.cli", "worker", "--db", f"sqlite:///{path}",
         "--app", "bench.timers_app:engine"], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sleepers", type=int, default=1_000_000)
    p.add_argument("--due", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--lead", type=float, default=8.0, help="seconds before the first is due")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())

    idle_path = tmp / "idle.db"
    build(idle_path, 0, 0, 0, 1)
    idle = worker(idle_path)
    time.sleep(3)
    idle_rss = max(rss_mb(idle.pid) for _ in range(5) if not time.sleep(0.2))
    idle.send_signal(signal.SIGTERM)
    idle.wait()

    big = tmp / "big.db"
    t0 = time.time()
    build(big, a.sleepers, a.due, 0, a.rate)  # placeholder times, fixed below
    built = time.time() - t0
    start = time.time() + a.lead
    db = sqlite3.connect(big, isolation_level=None)
    db.execute("BEGIN")
    db.execute("UPDATE instances SET due_at = ? + CAST(substr(id, 2) AS INTEGER) / ?,"
               " payload = json_object('at', ? + CAST(substr(id, 2) AS INTEGER) / ?),"
               " waiting_on = json_set(waiting_on, '$.until',"
               " ? + CAST(substr(id, 2) AS INTEGER) / ?)"
               " WHERE CAST(substr(id, 2) AS INTEGER) < ?",
               (start, a.rate, start, a.rate, start, a.rate, a.due))
    db.execute("UPDATE steps SET wake_at = (SELECT due_at FROM instances i WHERE i.id ="
               " steps.instance_id) WHERE CAST(substr(instance_id, 2) AS INTEGER) < ?",
               (a.due,))
    db.execute("COMMIT")
    print(json.dumps({"case": "build", "sleepers": a.sleepers, "seconds": round(built, 1),
                      "file_mb": round(big.stat().st_size / 2**20, 1)}), flush=True)

    w = worker(big)
    peak = 0.0
    deadline = start + a.due / a.rate + 30
    while time.time() < deadline:
        peak = max(peak, rss_mb(w.pid))
        done = db.execute("SELECT count(*) FROM instances WHERE id < ? AND status ="
                          " 'complete'", (f"s{a.due:07d}",)).fetchone()[0]  # a PK range
        if done >= a.due:
            break
        time.sleep(0.25)
    peak = max(peak, rss_mb(w.pid))
    w.send_signal(signal.SIGTERM)
    w.wait()
    rows = db.execute("SELECT json_extract(payload, '$.at'), output FROM instances"
                      " WHERE status = 'complete'").fetchall()
    late = sorted((float(out) - at) * 1000 for at, out in rows)
    waiting = db.execute("SELECT count(*) FROM instances WHERE status = 'waiting'").fetchone()[0]
    db.close()

    def pct(q: float) -> float:
        return round(late[min(len(late) - 1, int(q * len(late)))], 1) if late else -1.0

    print(json.dumps({"case": "memory", "idle_worker_rss_mb": round(idle_rss, 1),
                      "big_file_worker_peak_rss_mb": round(peak, 1),
                      "delta_mb": round(peak - idle_rss, 1), "goal_delta_mb": 50}), flush=True)
    print(json.dumps({"case": "timers", "fired": len(late), "expected": a.due,
                      "still_waiting": waiting, "rate_per_s": a.rate,
                      "lateness_ms_p50": pct(0.5), "lateness_ms_p99": pct(0.99),
                      "lateness_ms_max": round(late[-1], 1) if late else -1.0,
                      "goal_p99_ms": 100}), flush=True)


if __name__ == "__main__":
    main()
