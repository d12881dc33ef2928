"""agentflow and DBOS side by side, in one run, so that the ratios hold on a noisy machine.

usage: python bench/run_side_by_side.py [--rounds 3] [--floor] [--json OUT]

1. Sets up the DBOS baseline venv as ../shared/baselines/README.md says, only if missing:
       python3 -m venv /tmp/venv-dbos && /tmp/venv-dbos/bin/pip install dbos==3.4.0
2. Alternates, each in its own fresh process and fresh database file, for --rounds rounds:
       agentflow conc (200 x 10)   vs  dbos_steps.py --workflows 200 --steps 10 --mode conc
       agentflow seq  (1 x 2,000)  vs  dbos_steps.py --workflows 1 --steps 2000 --mode seq
       agentflow create_batch (20,000 in batches of 1,000; no peer, goal 5,000/s)
3. Prints every run's JSON line, then the medians, the ratios agentflow/DBOS of the
   medians, and whether each goal of issue 3 is met (>= 10x on conc, >= 4x on seq,
   >= 5,000 creations/s).

--floor also runs ../shared/baselines/sqlite_floor.py once (the store's physical floor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path("/work/shared") if Path("/work/shared/baselines").is_dir() else REPO.parent / "shared"
BASELINES = SHARED / "baselines"
DBOS_VENV = Path("/tmp/venv-dbos")
DBOS_PY = DBOS_VENV / "bin" / "python"

GOALS = {"conc": 10.0, "seq": 4.0}
CREATE_GOAL = 5000.0


def ensure_dbos() -> None:
    ok = DBOS_PY.exists() and subprocess.run(
        [str(DBOS_PY), "-c", "import dbos"], capture_output=True).returncode == 0
    if ok:
        return
    print(f"# setting up {DBOS_VENV} (dbos==3.4.0)", flush=True)
    subprocess.run(["python3", "-m", "venv", str(DBOS_VENV)], check=True)
    subprocess.run([str(DBOS_VENV / "bin" / "pip"), "install", "-q", "dbos==3.4.0"], check=True)


def run_json(cmd: list[str], label: str) -> dict[str, Any]:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{label} failed (exit {proc.returncode}): {' '.join(cmd)}")
    result: dict[str, Any] = json.loads(lines[-1])
    print(f"{label:<16} {lines[-1]}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--floor", action="store_true", help="also run sqlite_floor.py once")
    p.add_argument("--json", default=None, help="write the summary as JSON to this file")
    a = p.parse_args()

    ensure_dbos()
    work = tempfile.mkdtemp(prefix="side-by-side-")
    py = sys.executable
    bench = str(HERE / "bench_engine.py")
    dbos = str(BASELINES / "dbos_steps.py")
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in
                                             ("af_conc", "dbos_conc", "af_seq", "dbos_seq",
                                              "af_create")}
    try:
        if a.floor:
            out = subprocess.run([py, str(BASELINES / "sqlite_floor.py"), "--dir",
                                  os.path.join(work, "floor")], capture_output=True, text=True)
            for line in out.stdout.splitlines():
                print(f"{'floor':<16} {line}", flush=True)
        for r in range(1, a.rounds + 1):
            print(f"# round {r}/{a.rounds}", flush=True)
            d = os.path.join(work, f"r{r}")
            os.makedirs(d)
            runs["af_conc"].append(run_json(
                [py, bench, "--case", "conc", "--workflows", "200", "--steps", "10",
                 "--dir", d], "agentflow conc"))
            runs["dbos_conc"].append(run_json(
                [str(DBOS_PY), dbos, "--workflows", "200", "--steps", "10", "--mode", "conc",
                 "--db", os.path.join(d, "dbos_conc.sqlite")], "dbos conc"))
            runs["af_seq"].append(run_json(
                [py, bench, "--case", "seq", "--seq-steps", "2000", "--dir", d],
                "agentflow seq"))
            runs["dbos_seq"].append(run_json(
                [str(DBOS_PY), dbos, "--workflows", "1", "--steps", "2000", "--mode", "seq",
                 "--db", os.path.join(d, "dbos_seq.sqlite")], "dbos seq"))
            runs["af_create"].append(run_json(
                [py, bench, "--case", "create", "--creates", "20000", "--batch", "1000",
                 "--dir", d], "agentflow create"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(x["creations_per_s" if k == "af_create" else "steps_per_s"]
                                for x in v) for k, v in runs.items()}
    summary: dict[str, Any] = {"rounds": a.rounds, "medians": med, "ratios": {}, "goals": {}}
    print(f"\n# medians of {a.rounds} (steps/s; creations/s for create)")
    for case in ("conc", "seq"):
        af, db = med[f"af_{case}"], med[f"dbos_{case}"]
        ratio = af / db
        summary["ratios"][case] = round(ratio, 2)
        met = ratio >= GOALS[case]
        summary["goals"][case] = {"goal_x": GOALS[case], "ratio": round(ratio, 2), "met": met,
                                  "shortfall_pct": 0.0 if met else
                                  round((1 - ratio / GOALS[case]) * 100, 1)}
        all_af = ", ".join(f"{x['steps_per_s']:.0f}" for x in runs[f"af_{case}"])
        all_db = ", ".join(f"{x['steps_per_s']:.0f}" for x in runs[f"dbos_{case}"])
        print(f"{case:<6} agentflow {af:>9.1f} [{all_af}]  dbos {db:>7.1f} [{all_db}]"
              f"  ratio {ratio:6.2f}x  goal >= {GOALS[case]:g}x: {'MET' if met else 'NOT MET'}")
    cr = med["af_create"]
    all_cr = ", ".join(f"{x['creations_per_s']:.0f}" for x in runs["af_create"])
    summary["goals"]["create"] = {"goal_per_s": CREATE_GOAL, "median": cr,
                                  "met": cr >= CREATE_GOAL}
    print(f"create agentflow {cr:>9.1f} creations/s [{all_cr}]  goal >= {CREATE_GOAL:,.0f}/s: "
          f"{'MET' if cr >= CREATE_GOAL else 'NOT MET'}")
    summary["runs"] = runs
    print(json.dumps({k: summary[k] for k in ("medians", "ratios", "goals")}))
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
