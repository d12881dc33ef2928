"""An independent client: drive ``agentflow-mcp`` with the MCP Inspector's CLI.

    python tests/mcp_server/inspector_check.py [--inspector-dir DIR]

Installs ``@modelcontextprotocol/inspector`` from the npm registry into a temporary
directory (or uses ``DIR`` if it holds one already), then runs its CLI against the
server over stdio, one server process per call on one SQLite file: list the tools,
validate an invalid and a valid plan, submit, start, wait, get, and read the plan-API
resource. Every answer is checked, including that the structured results match the
output schemas (the Inspector's TypeScript client validates them too). Exits non-zero
with the failing step on stderr. ``.ci/run`` calls it after the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "@modelcontextprotocol/inspector"
EXPECTED_TOOLS = {
    "validate_plan", "submit_plan", "list_plans", "start_instance", "get_instance",
    "list_instances", "wait_for_instance", "send_event", "list_pending_events", "approve",
    "pause_instance", "resume_instance", "terminate_instance", "restart_instance",
    "get_history",
    # what a model reads its grants with, and the schedules (this wave's additions)
    "describe_capabilities", "schedule_plan", "list_schedules", "pause_schedule",
    "resume_schedule", "delete_schedule",
}
INVALID_PLAN = "async def run(event, step):\n    step.sleep('nap', 1)\n    return time.time()\n"
PLAN = '''async def run(event, step):
    numbers = event.payload.get("numbers", [])
    total = await step.do("add", lambda: sum(numbers))
    return {"total": total}
'''


class CheckFailed(Exception):
    pass


def install(prefix: Path) -> Path:
    cli = prefix / "node_modules" / ".bin" / "mcp-inspector"
    if not cli.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise CheckFailed("npm is not installed: the Inspector check needs Node.js")
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        PACKAGE], check=True, stdout=subprocess.DEVNULL, timeout=600)
    if not cli.exists():
        raise CheckFailed(f"{PACKAGE} installed no mcp-inspector command in {prefix}")
    return cli


class Inspector:
    def __init__(self, cli: Path, db: Path) -> None:
        self.cli = cli
        self.server = [sys.executable, "-m", "mcp_server", "--agent", "inspector",
                       "--db", f"sqlite:///{db}"]

    def run(self, *args: str) -> Any:
        command = [str(self.cli), "--cli", *self.server, *args]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        out = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env,
                             cwd=REPO)
        if out.returncode != 0:
            raise CheckFailed(f"inspector {' '.join(args)} exited {out.returncode}:\n"
                              f"{out.stderr[-3000:]}{out.stdout[-2000:]}")
        try:
            return json.loads(out.stdout)
        except ValueError:
            raise CheckFailed(f"inspector {' '.join(args)} printed no JSON:\n"
                              f"{out.stdout[-2000:]}") from None

    def call(self, tool: str, **arguments: str) -> dict[str, Any]:
        args = ["--method", "tools/call", "--tool-name", tool]
        for key, value in arguments.items():
            args += ["--tool-arg", f"{key}={value}"]
        result = self.run(*args)
        if result.get("isError"):
            raise CheckFailed(f"{tool} failed: {result.get('content')}")
        structured = result.get("structuredContent")
        if not isinstance(structured, dict):
            raise CheckFailed(f"{tool} returned no structured content: {result}")
        text = result["content"][0]["text"]
        if text != structured["summary"]:
            raise CheckFailed(f"{tool}: the first text block is not the summary")
        return structured


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    print(f"ok: {what}")


def check(cli: Path, workdir: Path) -> None:
    inspector = Inspector(cli, workdir / "inspector.db")

    tools = {t["name"]: t for t in inspector.run("--method", "tools/list")["tools"]}
    expect(set(tools) == EXPECTED_TOOLS, f"tools/list shows the {len(EXPECTED_TOOLS)} tools")
    expect(all(t.get("outputSchema") and t.get("description") for t in tools.values()),
           "every tool has a description and an output schema")

    invalid = inspector.call("validate_plan", source=INVALID_PLAN)
    codes = {d["code"] for d in invalid["diagnostics"]}
    expect(not invalid["ok"] and {"AF401", "AF201"} <= codes,
           f"validate_plan reports the invalid plan's problems ({sorted(codes)})")
    expect(inspector.call("validate_plan", source=PLAN)["ok"], "validate_plan accepts the fix")

    stored = inspector.call("submit_plan", name="sum", source=PLAN)
    expect(stored["ok"] and stored["plan"]["name"] == "sum",
           f"submit_plan stores version {stored['plan']['version']}")
    started = inspector.call("start_instance", plan="sum", id="inspector-1",
                             params=json.dumps({"numbers": [1, 2, 3, 4]}))
    expect(started["instance"]["id"] == "inspector-1", "start_instance starts it")
    waited = inspector.call("wait_for_instance", instance_id="inspector-1",
                            timeout_seconds="30")
    expect(waited["settled"], "wait_for_instance sees it settle")
    got = inspector.call("get_instance", instance_id="inspector-1")["instance"]
    expect(got["status"] == "complete" and got["output"] == {"total": 10},
           f"get_instance shows it complete with {got['output']}")

    docs = inspector.run("--method", "resources/read", "--uri", "agentflow://docs/plan-api")
    expect("async def run(event, step)" in docs["contents"][0]["text"],
           "resources/read serves the plan-authoring guide")
    prompts = {p["name"] for p in inspector.run("--method", "prompts/list")["prompts"]}
    expect(prompts == {"author_plan", "debug_instance"}, "prompts/list shows both prompts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inspector-dir", type=Path,
                        help="where to install (or find) the Inspector; default: a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentflow-inspector-") as tmp:
        try:
            cli = install(args.inspector_dir or Path(tmp) / "npm")
            check(cli, Path(tmp))
        except (CheckFailed, subprocess.SubprocessError) as exc:
            print(f"inspector check FAILED: {exc}", file=sys.stderr)
            return 1
    print("inspector check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
