"""The README's snippets: the example file shown verbatim, and every Python block run
as a script, as written, in a fresh folder (the model APIs served by a scripted model
over real HTTP on loopback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest

from tests.tools.scripted import ScriptedModel

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[str]:
    return BLOCK.findall((REPO / "README.md").read_text())


def test_readme_shows_the_example_file_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    example = (REPO / "agentflow" / "examples" / "greet.py").read_text()
    body = example.split('"""', 2)[2].lstrip("\n")  # without the module docstring
    assert f"```python\n{body}```" in readme


def test_readme_setup_commands_match_ci() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -e . && agentflow demo" in readme
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in readme
    assert test_command in ci


@pytest.fixture(scope="module")
def model_api() -> Iterator[str]:
    """The OpenAI and Anthropic APIs on loopback, answered by `ScriptedModel`."""
    model = ScriptedModel()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            reply = model(httpx2.Request("POST", f"http://model{self.path}", content=body))
            data = json.dumps(reply.json()).encode()
            self.send_response(reply.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_python_block_is_a_script() -> None:
    """No top-level ``await`` or ``async with``: a script cannot run them (the blocks
    are also run, one by one, below)."""
    blocks = python_blocks()
    assert len(blocks) >= 6
    for block in blocks:
        compile(block, "README.md", "exec")  # top-level await is a SyntaxError here


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_each_readme_block_runs_as_written(index: int, tmp_path: Path,
                                           model_api: str) -> None:
    block = python_blocks()[index]
    script = tmp_path / f"block{index}.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if k != "AGENTFLOW_DB"}
    env.update(OPENAI_BASE_URL=f"{model_api}/v1", OPENAI_API_KEY="sk-test",
               ANTHROPIC_BASE_URL=model_api, ANTHROPIC_API_KEY="sk-ant-test",
               PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"README block {index}:\n{block}\n{done.stderr}"
    if "engine.binding(\"greet\")" in block:
        assert done.stdout.startswith("complete hello Ada: sent welcome mail to Ada")
    if "in_thread()" in block:
        assert done.stdout.startswith("42\n")
    if "pending_events()" in block:
        assert "waiting" in done.stdout and "PendingEvent(" in done.stdout
