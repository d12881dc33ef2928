"""Validator speed on 1,000-line plans, against CPython's own parse and compile.

    python bench/bench_validator.py [--lines 1000] [--runs 30]

Two generated plans of ``--lines`` lines: a clean one (helpers, loops, steps, waits)
and a broken one where one line in ten is a mistake models make (imports, unawaited
steps, clock reads, dunder walks, bare excepts, print, str.format). For each, prints
plans validated per second, diagnostics per second, and the ratio to ``ast.parse`` and
to ``compile`` of the same text measured in the same run (the floor any validator
that reads the syntax tree pays). The validator never raises: both plans get a
report.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox import validate

MISTAKES = [
    "    import json",
    '    step.do("forgot {i}", lambda: {i})',
    "    started = time.time()",
    "    klass = event.__class__",
    '    text = "{{}}".format({i})',
    "    print({i})",
    "    try:\n        x = {i}\n    except:\n        pass",
]


def plan(lines: int, *, broken: bool) -> str:
    out = ["LIMIT = 10", "", "def double(x):", "    return x * 2", "",
           "async def run(event, step):", "    total = 0"]
    i = 0
    while len(out) < lines - 1:
        i += 1
        if broken and i % 10 == 0:
            out.extend(MISTAKES[(i // 10) % len(MISTAKES)].format(i=i).split("\n"))
        elif i % 7 == 0:
            out.append(f'    got = await step.wait_for_event("wait {i}", type="t{i}", '
                       'timeout="1 hour")')
        elif i % 5 == 0:
            out.append(f"    for k in range({i % 9}):")
            out.append(f'        total += await step.do(f"loop {i} {{k}}", lambda: k)')
        else:
            out.append(f'    total += await step.do("s{i}", lambda: double({i}))')
    out.append("    return {'total': total}")
    return "\n".join(out) + "\n"


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    for broken in (False, True):
        source = plan(args.lines, broken=broken)
        report = validate(source)
        assert report.ok != broken, report.diagnostics[:3]
        t_validate = best_of(args.runs, lambda s=source: validate(s))
        t_parse = best_of(args.runs, lambda s=source: ast.parse(s))
        t_compile = best_of(args.runs, lambda s=source: compile(s, "<plan>", "exec"))
        print(json.dumps({
            "bench": "validate", "plan": "broken" if broken else "clean",
            "lines": source.count("\n"), "diagnostics": len(report.diagnostics),
            "codes": sorted({d.code for d in report.diagnostics}),
            "ms_per_plan": round(t_validate * 1000, 2),
            "plans_per_s": round(1 / t_validate, 1),
            "diagnostics_per_s": round(len(report.diagnostics) / t_validate),
            "x_ast_parse": round(t_validate / t_parse, 2),
            "x_compile": round(t_validate / t_compile, 2),
        }))


if __name__ == "__main__":
    main()
