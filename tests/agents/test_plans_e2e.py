"""End to end with real worker processes and real host restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def phase(db: Path, log: Path, number: int) -> dict[str, object]:
    out = subprocess.run([sys.executable, str(HERE / "host_phase.py"), str(db), str(log),
                          str(number)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_plan_survives_host_restarts_across_a_3_day_sleep_and_an_approval(tmp_path: Path
                                                                           ) -> None:
    db, log = tmp_path / "plans.db", tmp_path / "tickets.log"
    first = phase(db, log, 1)
    assert first == {"status": "waiting", "output": None, "waiting_on": "sleep"}
    second = phase(db, log, 2)  # a new host process, 3 days later
    assert second == {"status": "waiting", "output": None, "waiting_on": "event"}
    third = phase(db, log, 3)  # another new process sends the approval
    assert third == {"status": "complete", "output": {"status": "approved", "ticket": "T-1"},
                     "waiting_on": None}
    # The capability's side effect ran once, across three host processes and replays.
    assert log.read_text().splitlines() == ["disk full"]
