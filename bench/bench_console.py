"""Change-to-page latency of the console: how long after a change is committed (by
another process) an open page shows it, without reloading.

A real ``agentflow serve --no-run`` serves the console on a fresh SQLite file; Debian's
Chromium (Playwright, ``executable_path``) keeps an instance's page open. This process
pauses the waiting instance (through the Python API) and times until the page's status
badge shows it, then resumes it. The peer, measured in the same run on the same
database: each resume as seen by a `flow.subscribe()` subscriber that polls the store
as the console's event stream does (every 0.1 s), i.e. the change feed alone, without
SSE, the page's re-fetch and the browser's render. Nothing here asserts a time.

    python bench/bench_console.py --flips 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from agentflow import AgentFlow

ROOT = Path(__file__).resolve().parents[1]
PLAN = '''async def run(event, step):
    await step.wait_for_event("go", type="go", timeout="7 days")
'''
TOKEN = "bench-operator-" + secrets.token_hex(8)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _listening(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return
    raise SystemExit("agentflow serve did not start")


async def main(flips: int, chromium: str) -> dict[str, float]:
    from playwright.async_api import async_playwright

    folder = tempfile.mkdtemp()
    db = f"sqlite:///{folder}/bench.db"
    port = _port()
    async with AgentFlow(db, isolation="inline") as flow:  # this process runs the plan
        agent = flow.agent("bench")
        await agent.submit_plan("p", PLAN)
        inst = await agent.start("p")
        await agent.wait(inst.id, timeout=60)
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--no-run",
            "--listen", f"127.0.0.1:{port}", "--operator", f"bench={TOKEN}", cwd=ROOT,
            env=dict(os.environ))
        try:
            await _listening(port)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=chromium,
                                                  args=["--no-sandbox"])
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{port}/instances/{inst.id}")
                await page.fill("input[name=token]", TOKEN)
                await page.click("button[type=submit]")
                await page.locator("#status", has_text="waiting").wait_for()
                page_ms, feed_ms = [], []
                arrivals: asyncio.Queue[float] = asyncio.Queue()

                async def follow() -> None:
                    async for change in flow.subscribe(instance_ids=[inst.id], poll=0.1):
                        if change.kind == "status" and change.status == "waiting":
                            arrivals.put_nowait(time.perf_counter())

                follower = asyncio.create_task(follow())
                for _ in range(flips):
                    # The page: from the pause to the badge showing it.
                    started = time.perf_counter()
                    await inst.pause()
                    await page.locator("#status", has_text="paused").wait_for(timeout=60_000)
                    page_ms.append((time.perf_counter() - started) * 1000)
                    # The peer: the feed alone, for the resume.
                    started = time.perf_counter()
                    await inst.resume()
                    feed_ms.append((await asyncio.wait_for(arrivals.get(), 60) - started)
                                   * 1000)
                    await page.locator("#status", has_text="waiting").wait_for(timeout=60_000)
                follower.cancel()
                await browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            await server.wait()
    page_median, feed_median = statistics.median(page_ms), statistics.median(feed_ms)
    return {"flips": flips, "page_median_ms": round(page_median, 1),
            "page_p90_ms": round(statistics.quantiles(page_ms, n=10)[-1], 1),
            "feed_median_ms": round(feed_median, 1),
            "page_over_feed": round(page_median / feed_median, 2)}


async def paging(count: int, rounds: int = 20) -> dict[str, float]:
    """The instances list's first page against its last one, ``count`` instances deep
    (keyset paging: the same cost at any depth). Times are the console's HTTP answers."""
    import httpx2

    from agentflow import Engine

    folder = tempfile.mkdtemp()
    db = f"sqlite:///{folder}/paging.db"
    engine = Engine(db, run_scheduler=False)

    async def never(event: object, step: object) -> None:
        raise AssertionError("nothing runs here")

    engine.register("w", never)  # type: ignore[arg-type]
    async with engine:
        for start in range(0, count, 1000):
            await engine.binding("w").create_batch(
                [{"id": f"i{k:07d}"} for k in range(start, min(count, start + 1000))])
        rows = await engine.store.list_instances(limit=51, offset=count - 51)
    deep = f"{rows[0].created_at!r}|{rows[0].id}"  # the cursor of the very last page
    port = _port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentflow.cli", "serve", "--db", db, "--no-run",
        "--listen", f"127.0.0.1:{port}", "--operator", f"bench={TOKEN}", cwd=ROOT)
    try:
        await _listening(port)
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            form = await http.get("/login")
            found = re.search(r'name="login_token" value="([^"]+)"', form.text)
            assert found is not None
            await http.post("/login", data={"token": TOKEN, "next": "/instances",
                                            "login_token": found.group(1)})
            first_ms, last_ms = [], []
            for _ in range(rounds):
                for url, into in (("/instances", first_ms),
                                  (f"/instances?before={deep}", last_ms)):
                    started = time.perf_counter()
                    answer = await http.get(url)
                    into.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        await server.wait()
    first, last = statistics.median(first_ms), statistics.median(last_ms)
    return {"instances": count, "first_page_ms": round(first, 1),
            "last_page_ms": round(last, 1), "last_over_first": round(last / first, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=40)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--paging", type=int, default=0, metavar="N",
                        help="instead: the first page against the last, N instances deep")
    args = parser.parse_args()
    result = (asyncio.run(paging(args.paging)) if args.paging
              else asyncio.run(main(args.flips, args.chromium)))
    print(json.dumps(result, indent=1))
