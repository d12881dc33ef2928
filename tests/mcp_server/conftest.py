"""Shared plans, clients and server processes for the MCP server's tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters, types

from agentflow import AgentFlow
from mcp_server import ServerConfig, build_server

REPO = Path(__file__).resolve().parents[2]

BAD_PLAN = '''import os

async def run(event, step):
    step.do("compute", lambda: 1)
    return os.getcwd()
'''

APPROVAL_PLAN = '''async def run(event, step):
    total = await step.do("compute", lambda: sum(event.payload.get("numbers", [])))
    decision = await step.wait_for_event("approval", type="approval", timeout="1 day")
    if not decision["payload"].get("approved"):
        return {"status": "rejected", "total": total}
    return {"status": "approved", "total": total, "by": decision["payload"].get("by")}
'''

REPLY_PLAN = '''async def run(event, step):
    reply = await step.wait_for_event("reply", type="reply", timeout="1 day")
    return {"reply": reply["payload"]}
'''


def structured(result: types.CallToolResult) -> dict[str, Any]:
    """The structured content of a successful call (fails the test on an error)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def elicitation(action: str = "accept", content: dict[str, Any] | None = None,
                seen: list[str] | None = None) -> Any:
    """An elicitation callback that plays the person: it answers every request so."""
    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        if seen is not None:
            seen.append(params.message)
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]
    return answer


@pytest.fixture
async def af() -> AsyncIterator[AgentFlow]:
    flow = AgentFlow("memory://", isolation="inline")
    async with flow:
        yield flow


@pytest.fixture
def server(af: AgentFlow) -> Any:
    return build_server(af, ServerConfig(agent_id="alice"))


def connect(server: Any, mode: str = "auto", **kwargs: Any) -> Client:
    return Client(server, mode=mode, **kwargs)  # type: ignore[arg-type]


def stdio_params(db_url: str, *args: str, agent: str = "alice") -> StdioServerParameters:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "AGENTFLOW_AGENT": agent}
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "mcp_server", "--db", db_url, *args],
                                 env=env, cwd=str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not listen on {port} in {timeout}s"
                                     ) from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``agentflow-mcp --http`` in a subprocess with two tokens (alice, bob), shared by
    a module's tests (each uses its own ids)."""
    tmp_path = tmp_path_factory.mktemp("http")
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           "AGENTFLOW_MCP_TOKENS": '{"tok-bob": "bob"}'}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "--http", f"127.0.0.1:{port}",
         "--token", "tok-alice=alice", "--isolation", "inline",
         "--db", f"sqlite:///{tmp_path}/http.db"],
        env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()
