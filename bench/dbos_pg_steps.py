"""DBOS on PostgreSQL: one of several processes sharing one system database.

usage (in the DBOS venv, see ../shared/baselines/README.md):
    python bench/dbos_pg_steps.py --db URL --prepare          # run DBOS's migrations, exit
    python bench/dbos_pg_steps.py --db URL --workflows N --steps S

The same workload as ../shared/baselines/dbos_steps.py --mode conc (N workflows x S
trivial steps, DBOS.start_workflow for all, then every result), on PostgreSQL instead of
SQLite. Launches DBOS, prints "ready", waits for a line on stdin so that every process
starts together, then prints one JSON line with its wall-clock start and end.
"""
import argparse
import json
import sys
import time

from dbos import DBOS, DBOSConfig

p = argparse.ArgumentParser()
p.add_argument("--db", required=True)
p.add_argument("--workflows", type=int, default=200)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--prepare", action="store_true")
a = p.parse_args()
DBOS(config=DBOSConfig(name="bench", system_database_url=a.db, run_admin_server=False,
                       console_log_level="WARNING", application_version="bench"))


@DBOS.step()
def add(x: int) -> int:
    return x + 1


@DBOS.workflow()
def plan(n: int) -> int:
    x = 0
    for _ in range(a.steps):
        x = add(x)
    return x


DBOS.launch()
if a.prepare:
    DBOS.destroy()
    sys.exit(0)
print("ready", flush=True)
sys.stdin.readline()
t0 = time.time()
handles = [DBOS.start_workflow(plan, i) for i in range(a.workflows)]
res = [h.get_result() for h in handles]
t1 = time.time()
assert all(r == a.steps for r in res)
print(json.dumps({"system": "dbos", "workflows": a.workflows, "steps": a.workflows * a.steps,
                  "start": t0, "end": t1}), flush=True)
DBOS.destroy()
