"""Check the README's Claude Code commands with Claude Code's own CLI.

    python tests/mcp_server/claude_code_check.py [--claude-dir DIR]

Installs ``@anthropic-ai/claude-code`` from the npm registry into a temporary directory
(or uses ``DIR`` if it holds one already), takes the ``claude mcp add`` commands and the
HTTP server command from README.md as written, runs them in a scratch project with a
scratch ``$HOME``, and asks ``claude mcp list`` (which connects to every server and
lists its tools) whether each one is connected. The same HTTP command with a wrong
bearer token must fail to connect. Only the HTTP port is changed, to a free one.
Nothing reaches Anthropic's API: ``claude mcp`` runs locally. Exits non-zero with the
failing step on stderr. ``.ci/run`` calls it after the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "@anthropic-ai/claude-code@2.1.197"
README_PORT = "127.0.0.1:8765"


class CheckFailed(Exception):
    pass


def install(prefix: Path) -> Path:
    cli = prefix / "node_modules" / ".bin" / "claude"
    if not cli.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise CheckFailed("npm is not installed: the Claude Code check needs Node.js")
        subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        PACKAGE], check=True, stdout=subprocess.DEVNULL, timeout=600)
    if not cli.exists():
        raise CheckFailed(f"{PACKAGE} installed no claude command in {prefix}")
    return cli


def readme_commands() -> tuple[str, str, str]:
    """The stdio ``claude mcp add``, the HTTP server and the HTTP ``claude mcp add`` lines."""
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```",
                                                  (REPO / "README.md").read_text(), re.S)
             for line in block.splitlines()]
    adds = [line for line in lines if line.startswith("claude mcp add ")]
    stdio = [line for line in adds if "--transport stdio" in line]
    http = [line for line in adds if "--transport http" in line]
    server = [line for line in lines if "agentflow-mcp --http" in line]
    if len(stdio) != 1 or len(http) != 1 or len(server) != 1:
        raise CheckFailed(f"README.md should show one stdio and one HTTP `claude mcp add` and"
                          f" one HTTP server command; found {stdio}, {http}, {server}")
    return stdio[0], server[0], http[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"the HTTP server exited {server.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise CheckFailed(f"the HTTP server did not listen on port {port} within {timeout} s")


def check(cli: Path, work: Path) -> None:
    stdio, server_line, http = readme_commands()
    port = free_port()
    address = f"127.0.0.1:{port}"
    project, home = work / "project", work / "home"
    project.mkdir()
    home.mkdir()
    bindir = work / "bin"  # `claude` on PATH, as a user has it
    bindir.mkdir()
    (bindir / "claude").symlink_to(cli)
    env = {**os.environ, "HOME": str(home), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONWARNINGS": "ignore", "DISABLE_TELEMETRY": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}

    def sh(line: str) -> str:
        out = subprocess.run(["bash", "-c", line], cwd=project, env=env, capture_output=True,
                             text=True, timeout=180)
        if out.returncode != 0:
            raise CheckFailed(f"`{line}` exited {out.returncode}:\n{out.stderr}{out.stdout}")
        return out.stdout

    server = subprocess.Popen(["bash", "-c", server_line.replace(README_PORT, address)],
                              cwd=project, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(port, server)
        sh(stdio)
        named = "claude mcp add --transport http agentflow "
        http = http.replace(README_PORT, address)
        sh(http.replace(named, named.replace("agentflow ", "agentflow-http ")))
        sh(http.replace(named, named.replace("agentflow ", "agentflow-badtoken "))
               .replace("Bearer ", "Bearer WRONG-"))
        listing = subprocess.run(["bash", "-c", "claude mcp list"], cwd=project, env=env,
                                 capture_output=True, text=True, timeout=180).stdout
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    status = {line.split(":", 1)[0]: line for line in listing.splitlines() if ": " in line}
    for name in ("agentflow", "agentflow-http"):
        if "Connected" not in status.get(name, "") or "Failed" in status.get(name, ""):
            raise CheckFailed(f"claude mcp list does not show {name} connected:\n{listing}")
    if "Connected" in status.get("agentflow-badtoken", "Connected").replace("Failed to connect",
                                                                             ""):
        raise CheckFailed(f"a wrong bearer token connected:\n{listing}")
    if not (project / "agentflow.db").exists():
        raise CheckFailed("the stdio server did not create ./agentflow.db in the project")
    print(f"Claude Code ({PACKAGE}): README stdio and HTTP commands connect; a wrong token"
          " does not")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claude-dir", type=Path, help="reuse an npm prefix holding the CLI")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentflow-claude-") as tmp:
        try:
            cli = install(args.claude_dir or Path(tmp) / "npm")
            check(cli, Path(tmp))
        except (CheckFailed, subprocess.SubprocessError) as exc:
            print(f"claude_code_check: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
