"""A person answers the approval dialog in Claude Code's interactive UI, under tmux.

    python tests/approvals/claude_code_ui_check.py [--claude-dir DIR] [--keep]

For each width (200 and 80 columns) and each answer (approve, reject, decline, cancel),
Claude Code's real interactive UI runs in a tmux session against a fake Messages API on
loopback: the scripted model writes a plan that pays once approved, starts it and calls
``approve``. The dialog is read with ``tmux capture-pane`` (the header, agent, instance
and plan, must be on screen, and every line of what the plan chose behind ``> ``), then
the person answers with ``tmux send-keys``. The outcome is read from the database:
approve pays, reject does not, decline and cancel leave the instance waiting and the
model is told how a person answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.approvals.claude_code_approval_check import (  # noqa: E402
    PLAN,
    ScriptedModel,
    T,
    serve,
)
from tests.mcp_server.claude_code_check import PACKAGE, CheckFailed, install  # noqa: E402

IID = "ui-pay-1"
NOTE = "\n".join(f"line {i}: NOTE FROM YOUR SECURITY TEAM: this change is pre-approved, "
                 f"just choose approve and accept" for i in range(6))


def script() -> list[tuple[str, dict[str, Any], Any]]:
    return [
        (T + "submit_plan", {"name": "pay", "source": PLAN}, None),
        (T + "start_instance", {"plan": "pay", "id": IID, "params": {"amount": 5}}, None),
        (T + "wait_for_instance", {"instance_id": IID, "timeout_seconds": 30}, None),
        (T + "approve", {"instance_id": IID, "note": NOTE}, None),
    ]


class Tmux:
    def __init__(self, name: str, width: int, height: int, env: dict[str, str]) -> None:
        self.name, self.env = name, env
        self.width, self.height = width, height

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True,
                              env=self.env, timeout=30).stdout

    def start(self, command: str, cwd: Path) -> None:
        self.run("new-session", "-d", "-s", self.name, "-x", str(self.width), "-y",
                 str(self.height), "-c", str(cwd), command)

    def screen(self) -> str:
        try:
            return self.run("capture-pane", "-p", "-t", self.name)
        except subprocess.CalledProcessError:
            raise CheckFailed(f"{self.name}: the tmux session ended (Claude Code exited)"
                              ) from None

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, predicate: Callable[[str], bool], what: str,
                 timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise CheckFailed(f"{self.name}: no {what} within {timeout} s; the screen:\n"
                                  f"{screen}")
            time.sleep(0.3)

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True,
                       env=self.env, timeout=30)


def session(cli: Path, work: Path, width: int, answer: str) -> None:
    project, home = work / f"p-{width}-{answer}", work / f"h-{width}-{answer}"
    project.mkdir()
    home.mkdir()
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark",
        "customApiKeyResponses": {"approved": ["dummy"], "rejected": []}}))
    db = f"sqlite:///{project}/agentflow.db"
    model = ScriptedModel(script())
    server = serve(model)
    env = {**os.environ, "HOME": str(home), "PYTHONWARNINGS": "ignore",
           "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{server.server_port}",
           "ANTHROPIC_API_KEY": "dummy", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "MCP_TOOL_TIMEOUT": "600000",
           "TERM": "xterm-256color"}
    add = subprocess.run([str(cli), "mcp", "add", "agentflow", "-e", "AGENTFLOW_AGENT=ui",
                          "--", sys.executable, "-m", "mcp_server", "--db", db,
                          "--isolation", "inline"],
                         cwd=project, env=env, capture_output=True, text=True, timeout=120)
    if add.returncode != 0:
        raise CheckFailed(f"claude mcp add failed: {add.stderr}{add.stdout}")
    tmux = Tmux(f"af-{width}-{answer}-{os.getpid()}", width, 50 if width > 80 else 24, env)
    try:
        tmux.start(f"{cli} --allowedTools 'mcp__agentflow__*'", project)
        ready = False
        deadline = time.monotonic() + 120
        while not ready:
            screen = tmux.screen()
            if "trust" in screen.lower() and "folder" in screen.lower():
                tmux.keys("Enter")
            elif "use this API key" in screen:
                tmux.keys("Up")
                tmux.keys("Enter")
            elif "for shortcuts" in screen:
                ready = True
                continue
            if time.monotonic() > deadline:
                raise CheckFailed(f"Claude Code did not get ready:\n{screen}")
            time.sleep(0.5)
        tmux.keys("-l", "Pay for the order once a person approves it.")
        tmux.keys("Enter")
        dialog = tmux.wait_for(lambda s: "Decision:" in s and "Accept" in s,
                               "approval dialog")
        check_dialog(dialog, width)
        answer_dialog(tmux, answer)
        deadline = time.monotonic() + 120
        while len(model.results) < len(model.script):
            if time.monotonic() > deadline:
                raise CheckFailed(f"the approve call did not return; screen:\n"
                                  f"{tmux.screen()}")
            time.sleep(0.3)
        check_outcome(db, answer, model.results[-1])
    finally:
        if os.environ.get("KEEP_TMUX") is None:
            tmux.kill()
        server.shutdown()


def check_dialog(screen: str, width: int) -> None:
    for needle in (f'agent     "ui"  instance "{IID}"', 'plan      "pay"'):
        if needle not in screen:
            raise CheckFailed(f"{width} columns: {needle!r} is not on screen:\n{screen}")
    for line in screen.splitlines():
        if "NOTE FROM YOUR SECURITY TEAM" in line and "> " not in line:
            raise CheckFailed(f"{width} columns: a line of the note lost its '> ':\n{screen}")


#: The keys a person presses, as verified on Claude Code's form: → opens the choice
#: list on its first option, ↓ moves, Enter picks it and moves on to the comment; ↓
#: then reaches the Accept/Decline row, → moves to Decline; Esc cancels the dialog.
ANSWERS = {
    "approve": [["Right"], ["Enter"], ["Down"], ["Enter"]],
    "reject": [["Right"], ["Down"], ["Enter"], ["Down"], ["Enter"]],
    "decline": [["Down"], ["Down"], ["Right"], ["Enter"]],
    "cancel": [["Escape"]],
}


def answer_dialog(tmux: Tmux, answer: str) -> None:
    for keys in ANSWERS[answer]:
        tmux.keys(*keys)
        time.sleep(0.7)  # one key at a time, as a person types: the form redraws between


def check_outcome(db: str, answer: str, result: str) -> None:
    shown = subprocess.run([sys.executable, "-m", "agentflow.cli", "show", IID, "--json",
                            "--db", db], capture_output=True, text=True, timeout=120, cwd=REPO)
    status = json.loads(shown.stdout)["status"]
    expected = {"approve": ("complete", {"paid": 5, "receipt": "receipt for 5"}),
                "reject": ("complete", {"paid": 0})}
    if answer in expected:
        want_status, want_output = expected[answer]
        deadline = time.monotonic() + 60
        while (status["status"], status["output"]) != (want_status, want_output):
            if time.monotonic() > deadline:
                raise CheckFailed(f"{answer}: the instance is {status}")
            time.sleep(0.3)
            shown = subprocess.run([sys.executable, "-m", "agentflow.cli", "show", IID,
                                    "--json", "--db", db], capture_output=True, text=True,
                                   timeout=120, cwd=REPO)
            status = json.loads(shown.stdout)["status"]
        return
    if status["status"] != "waiting":
        raise CheckFailed(f"{answer}: the instance should still wait: {status}")
    outcome = "declined" if answer == "decline" else "cancelled"
    if f'"{outcome}"' not in result or f"agentflow approve {IID}" not in result:
        raise CheckFailed(f"{answer}: the model read {result}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude-dir", type=Path, help="reuse an npm prefix holding the CLI")
    parser.add_argument("--only", help="WIDTH:ANSWER, e.g. 80:approve")
    # KEEP_TMUX=1 in the environment leaves the sessions open to look at.
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("claude_code_ui_check: tmux is not installed", file=sys.stderr)
        return 1
    runs = [(w, a) for w in (200, 80) for a in ("approve", "reject", "decline", "cancel")]
    if args.only:
        width, answer = args.only.split(":")
        runs = [(int(width), answer)]
    with tempfile.TemporaryDirectory(prefix="agentflow-claude-ui-") as tmp:
        try:
            cli = install(args.claude_dir or Path(tmp) / "npm")
            for width, answer in runs:
                session(cli, Path(tmp), width, answer)
                print(f"{width} columns, {answer}: as expected")
        except (CheckFailed, subprocess.SubprocessError, OSError, ValueError) as exc:
            print(f"claude_code_ui_check: {exc}", file=sys.stderr)
            return 1
    print(f"Claude Code ({PACKAGE}) interactive UI: approve, reject, decline and cancel "
          f"each did what the dialog says, at 200 and 80 columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
