"""A real ``agentflow serve`` process on a SQLite file, and Debian's Chromium driven by
Playwright (never a downloaded browser). With ``$CI`` set, a missing Chromium fails
the browser tests instead of skipping them (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentflow import AgentFlow

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = os.environ.get("AGENTFLOW_TEST_CHROMIUM", "/usr/bin/chromium")
ALICE = "alice-token-" + "a" * 20
READER = "reader-token-" + "r" * 20


def chromium_path() -> str:
    found = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if found:
        return found
    message = (f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium; "
               ".ci/run does it)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Served:
    url: str
    db: str
    secret: str
    process: asyncio.subprocess.Process
    flow: AgentFlow  # the test's own view of the database: it authors and starts plans


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(flow: AgentFlow, config: Any) -> AsyncIterator[str]:
    """The console app for ``flow`` and ``config`` on a loopback port, in this process
    (uvicorn, lifespan off), with ``flow`` open; yields its base URL."""
    import uvicorn

    from agentflow.console import create_app

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(flow, config), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    async with flow:
        task = asyncio.create_task(server.serve())
        try:
            for _ in range(600):
                if server.started:
                    break
                await asyncio.sleep(0.1)
            assert server.started, "uvicorn did not start within 60 s"
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 60)


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"agentflow serve exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("agentflow serve did not start listening within 60 s")


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """``agentflow serve`` on a fresh SQLite file; ``@pytest.mark.serve_args(...)``
    adds command-line arguments."""
    marker = request.node.get_closest_marker("serve_args")
    extra = list(marker.args) if marker else []
    db = f"sqlite:///{tmp_path}/console.db"
    port = _free_port()
    secret = secrets.token_hex(32)
    env = {**os.environ, "AGENTFLOW_CONSOLE_OPERATORS": f"alice={ALICE} reader={READER}:read-only",
           "AGENTFLOW_CONSOLE_SECRET": secret}
    flow = AgentFlow(db, isolation="inline", run_scheduler=False)
    await flow.start()  # creates the schema before the server opens the file
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--isolation", "inline",
        "--listen", f"127.0.0.1:{port}", *extra, cwd=ROOT, env=env)
    try:
        await _wait_listening(port, process)
        yield Served(f"http://127.0.0.1:{port}", db, secret, process, flow)
    finally:
        await flow.close()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)
            assert code == 0, f"agentflow serve exited with {code} on SIGTERM"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


async def sign_in(browser: Any, served: Served, token: str = ALICE) -> Any:
    """A new page, signed in with ``token``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{served.url}/instances")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{served.url}/instances")
    return page


def screenshot_path(name: str) -> str:
    """Where a browser test saves its screenshot: docs/ (the README's pictures) when
    ``AGENTFLOW_SCREENSHOTS=docs`` is set, else a temporary folder, so that an ordinary
    run of the suite leaves the working tree as it found it."""
    if os.environ.get("AGENTFLOW_SCREENSHOTS") == "docs":
        DOCS.mkdir(exist_ok=True)
        return str(DOCS / name)
    folder = Path(tempfile.gettempdir()) / "agentflow-screenshots"
    folder.mkdir(exist_ok=True)
    return str(folder / name)
