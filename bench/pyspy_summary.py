"""Summarise a py-spy raw (collapsed) profile of bench/profile_engine.py by thread and area.

usage:
    py-spy record --threads --idle --rate 1000 -f raw -o /tmp/seq.txt -- \\
        python bench/profile_engine.py --case seq --mode none --repeat 3
    python bench/pyspy_summary.py /tmp/seq.txt [--steps 6000]

Only samples taken while the event loop runs are counted (stacks through
``BaseEventLoop._run_once``), plus the connection threads of the store
(``_ConnectionThread._serve`` in agentflow/store/sqlite.py; aiosqlite's worker threads in
profiles taken before the store ran sqlite3 on its own threads), busy samples only: each
store has a writer and a reader thread, mostly idle. Each sample is put in the
area of its innermost frame ("self" time); a second table counts, for some functions,
the samples with that function anywhere on the stack ("inclusive"). With ``--steps``,
samples are converted to microseconds per step (samples / rate / steps).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

LEAF_AREAS = [  # (area, regex on the innermost frame), first match wins
    ("idle: epoll wait (loop has nothing to run)", r"EpollSelector\.select"),
    ("idle: worker waits for work (queue.get)",
     r"_connection_worker_thread \(aiosqlite/core\.py:59\)"),
    ("idle: worker waits for work (queue.get)", r"SimpleQueue\.get|_serve .*get"),
    ("worker: sqlite3 call (SQL, fsync)",
     r"(_drive|_run) \(agentflow/store/sqlite\.py"),
    ("worker: sqlite3 call (SQL, fsync)",
     r"_connection_worker_thread \(aiosqlite/core\.py:6[0-9]\)"),
    ("worker: sqlite3 call (SQL, fsync)", r"Connection\._execute_fetchall|_execute_insert"),
    ("self-pipe wakeup (worker: call_soon_threadsafe write; loop: drain)",
     r"_write_to_self|_read_from_self"),
    ("loop: aiosqlite client (queue put, futures, wrappers)", r"aiosqlite/"),
    ("loop: tenacity", r"tenacity/"),
    ("loop: json", r"json/|_limits\.py"),
    ("loop: agentflow/_step.py", r"agentflow/_step\.py"),
    ("loop: agentflow/_engine.py", r"agentflow/_engine\.py"),
    ("loop: agentflow/store/sqlite.py", r"agentflow/store/sqlite\.py"),
    ("loop: agentflow other", r"agentflow/"),
    ("loop: asyncio machinery", r"asyncio/|selectors\.py|contextlib\.py"),
    ("loop: benchmark harness", r"profile_engine\.py|bench_engine\.py"),
]
INCLUSIVE = [
    ("SQLiteStore._in_write_txn (tenacity + lock + BEGIN..COMMIT awaits)",
     r"SQLiteStore\._in_write_txn"),
    ("  tenacity AsyncRetrying (all frames)", r"tenacity/"),
    ("SQLiteStore._write_batch (our batch SQL building)", r"SQLiteStore\._write_batch"),
    ("aiosqlite client calls (Connection.* on loop)",
     r"Connection\.(execute|executemany|execute_fetchall|_execute) \(aiosqlite"),
    ("Step.do (all of it, incl. awaiting)", r"Step\.do"),
    ("encode_value / dumps", r"encode_value|dumps \(agentflow"),
    ("json.loads", r"loads \(json"),
    ("  Activation.commit (JournalRow -> RunCommit -> queue)", r"Activation\.commit"),
    ("  RetryPolicy.parse (per step.do)", r"RetryPolicy\.parse"),
    ("dataclass __init__ (JournalRow, RunCommit, CommitResult...)", r"__create_fn__"),
    ("SQLiteStore.load_journal (one read per claimed instance)", r"load_journal"),
    ("  tenacity under SQLiteStore._read", r"SQLiteStore\._read .*tenacity/"),
    ("Engine._drive", r"Engine\._drive"),
    ("Engine._schedule + _idle", r"Engine\._schedule|Engine\._idle"),
    ("bench waiter (count query)", r"wait_all_finished"),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--steps", type=int, default=0, help="steps measured, to print us/step")
    a = p.parse_args()
    leaf: dict[str, Counter[str]] = {"loop": Counter(), "worker": Counter()}
    incl: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    with open(a.file) as fh:
        lines = fh.readlines()
    for line in lines:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        if "_connection_worker_thread" in frames[0]:
            thread = "worker"
        elif "BaseEventLoop._run_once" in stack:
            thread = "loop"
        else:
            continue  # imports and startup, outside the event loop
        totals[thread] += count
        inner = frames[-1]
        for area, rx in LEAF_AREAS:
            if re.search(rx, inner):
                leaf[thread][area] += count
                break
        else:
            leaf[thread][f"other: {inner}"] += count
        if thread == "loop":
            for name, rx in INCLUSIVE:
                if re.search(rx, stack):
                    incl[name] += count

    def fmt(n: int, base: int) -> str:
        us = f"{n / a.rate / a.steps * 1e6:8.1f} us/step" if a.steps else ""
        return f"{n:7d} {n / base * 100:5.1f}% {us}"

    idle = sum(v for k, v in leaf["loop"].items() if k.startswith("idle"))
    busy_loop = max(totals["loop"] - idle, 1)

    loop_total = totals["loop"]
    print(f"# event-loop thread: {loop_total} samples ({loop_total / a.rate:.2f} s)")
    for area, n in leaf["loop"].most_common(20):
        print(f"{fmt(n, loop_total)}  {area}")
    print("\n# event-loop thread, inclusive (function anywhere on the stack);"
          " last column: % of the loop's busy (non-idle) samples")
    for name, _ in INCLUSIVE:
        print(f"{fmt(incl[name], loop_total)} {incl[name] / busy_loop * 100:5.1f}%  {name}")
    busy = {k: v for k, v in leaf["worker"].items() if not k.startswith("idle")}
    print("\n# aiosqlite worker threads (writer + reader), busy samples only")
    for area, n in sorted(busy.items(), key=lambda kv: -kv[1]):
        print(f"{fmt(n, loop_total)}  {area}  (% of loop-thread wall)")


if __name__ == "__main__":
    main()
