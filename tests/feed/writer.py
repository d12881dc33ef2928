"""A writer process for the feed tests: creates and terminates instances, one
transaction each, so that its changes interleave with other writers' changes.

Usage: python -m tests.feed.writer URL PREFIX COUNT
"""

from __future__ import annotations

import asyncio
import sys

from agentflow import Engine


async def main(url: str, prefix: str, count: int) -> None:
    engine = Engine(url, run_scheduler=False)  # nothing runs: only these writes change it
    engine.register("feed", _never_run)
    async with engine:
        binding = engine.binding("feed")
        for i in range(count):
            inst = await binding.create(params={"i": i}, id=f"{prefix}-{i:04d}")
            await inst.terminate()


async def _never_run(event: object, step: object) -> None:
    raise AssertionError("no scheduler runs in this process")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
