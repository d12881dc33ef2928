"""The chaos test of tests/engine/test_crash.py at a larger size.

usage: python bench/chaos.py [--instances 200] [--steps 50] [--kills 20] [--workers 4]
                             [--db postgresql://...]
Several `agentflow worker` processes share one database (a fresh SQLite file, or the
PostgreSQL database --db names, which should be empty) while random SIGKILLs hit
them; at the end every instance is complete with the right output, no committed step
ran again, each step ran at most once more than the crashes that hit it, and no
instance ran in two processes at once. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine.harness import run_chaos


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--instances", type=int, default=200)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--db", default=None, help="a database URL (default: a fresh SQLite file)")
    a = p.parse_args()
    t0 = time.time()
    report = asyncio.run(run_chaos(Path(tempfile.mkdtemp()), instances=a.instances,
                                   steps=a.steps, kills=a.kills, workers=a.workers,
                                   seed=a.seed, timeout=300, url=a.db))
    print(json.dumps({**report, "seconds": round(time.time() - t0, 1), "invariants": "held"}))


if __name__ == "__main__":
    main()
