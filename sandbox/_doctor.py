"""`doctor()`: which defense layers work on this machine, probed for real.

The OS layers are probed by starting a real pool in a fresh interpreter, running a plan
in a confined worker and reading back what the worker applied, so the answer is what a
worker gets here, not what a feature test guesses. A fresh interpreter keeps the
caller's process and event loop out of it (``doctor()`` is synchronous).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib import metadata
from typing import Any

from sandbox._codes import DIAGNOSTIC_CODES
from sandbox._limits import LAYER_NAMES, LayerStatus

__all__ = ["doctor"]

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from sandbox._doctor import _probe_main; _probe_main()")


def doctor(timeout: float = 60.0) -> list[LayerStatus]:
    """Probe every defense layer on this machine.

    Args:
        timeout: seconds to allow the probe (it starts a zygote and one worker).

    Returns:
        One `LayerStatus` per layer: ``validator``, ``restricted_python``, then the
        worker layers (``close_fds``, ``rlimits``, ``net_namespace``, ``setuid``,
        ``no_new_privs``, ``landlock``, ``seccomp``) and ``watchdog``. A worker still
        starts without an unavailable layer; ``detail`` says why it is missing.
    """
    statuses = [LayerStatus("validator", True, f"static checks, {len(DIAGNOSTIC_CODES)} "
                                               f"diagnostic codes")]
    version = metadata.version("RestrictedPython")
    major_minor = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    statuses.append(LayerStatus("restricted_python", major_minor >= (8, 5),
                                f"RestrictedPython {version} with the async plan policy"
                                + ("" if major_minor >= (8, 5) else "; 8.5 or later needed")))
    try:
        completed = subprocess.run([sys.executable, "-I", "-c", _PROBE, _PACKAGE_PARENT],
                                   capture_output=True, timeout=timeout, check=False)
        report: dict[str, Any] = json.loads(completed.stdout.decode() or "{}")
        error = report.get("error") or (None if report else
                                        completed.stderr.decode(errors="replace")[-500:])
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        report, error = {}, f"{type(exc).__name__}: {exc}"
    applied: dict[str, str] = report.get("applied", {})
    machine = {name: (available, detail) for name, available, detail
               in report.get("layers", [])}
    for name in LAYER_NAMES:
        if error:
            statuses.append(LayerStatus(name, False, f"probe failed: {error}"))
        elif name in applied:
            statuses.append(LayerStatus(name, True, applied[name]))
        else:
            available, detail = machine.get(name, (False, "not reported"))
            statuses.append(LayerStatus(name, bool(available), detail))
    pidfd = hasattr(os, "pidfd_open")
    statuses.append(LayerStatus("watchdog", pidfd and not error,
                                "wall-clock deadline per call, SIGKILL through a pidfd"
                                if pidfd else "os.pidfd_open is missing (Linux >= 5.3)"))
    return statuses


def _probe_main() -> None:
    from sandbox._host import WorkerPool

    class _Host:
        async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
            return await run_body() if run_body else None

        async def capability(self, *args: Any) -> Any:
            return None

    async def probe() -> dict[str, Any]:
        async with WorkerPool() as pool:
            plan = "async def run(event, step):\n    return await step.do('x', lambda: 1)\n"
            event = {"payload": None, "timestamp": "2026-01-01T00:00:00+00:00",
                     "instance_id": "doctor"}
            await pool.run_plan("doctor", plan, event, _Host(), capabilities=[])
            return {"applied": pool.worker_layers("doctor"),
                    "layers": [[s.name, s.available, s.detail] for s in pool.machine_layers]}

    try:
        result = asyncio.run(probe())
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(result))
