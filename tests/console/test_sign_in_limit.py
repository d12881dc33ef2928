"""Failed sign-ins are limited per client address and overall, over real HTTP: a
uvicorn server on loopback, clients on distinct loopback addresses (127.0.0.2, ...)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.clock import ManualClock
from agentflow.console import ConsoleConfig, SignInLimit, parse_operators
from tests.console.conftest import ALICE, serving

WRONG = "wrong-token-" + "w" * 20


@pytest.fixture
async def console_at(tmp_path: Path, request: pytest.FixtureRequest
                     ) -> AsyncIterator[tuple[str, ManualClock]]:
    limit: SignInLimit = request.param
    clock = ManualClock()
    flow = AgentFlow(f"sqlite:///{tmp_path}/c.db", clock=clock, run_scheduler=False)
    config = ConsoleConfig(operators=parse_operators([f"alice={ALICE}"]),
                           secret=b"s" * 32, sign_in_limit=limit)
    async with serving(flow, config) as url:
        yield url, clock


def _client(url: str, address: str) -> Any:
    import httpx2

    return httpx2.AsyncClient(base_url=url, transport=httpx2.AsyncHTTPTransport(
        local_address=address))


async def _try(http: Any, token: str) -> Any:
    form = await http.get("/login")
    login_token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert login_token is not None, form.text
    return await http.post("/login", data={"token": token, "next": "/instances",
                                           "login_token": login_token.group(1)})


@pytest.mark.parametrize("console_at", [SignInLimit(per_client=3, per_client_every=60,
                                                    overall=100, overall_every=1)],
                         indirect=True)
async def test_one_client_is_limited_then_let_in_again(console_at: tuple[str, ManualClock]
                                                        ) -> None:
    url, clock = console_at
    async with _client(url, "127.0.0.2") as guesser, _client(url, "127.0.0.3") as other:
        for _ in range(3):
            assert (await _try(guesser, WRONG)).status_code == 401
        refused = await _try(guesser, WRONG)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert "Too many failed sign-ins" in refused.text
        # Not even the right token is checked while the client must wait.
        right = await _try(guesser, ALICE)
        assert right.status_code == 429 and "agentflow_session" not in guesser.cookies
        # Another address is not held back by this one.
        assert (await _try(other, ALICE)).status_code == 303
        # Not for good: one attempt comes back per minute.
        clock.advance(61)
        assert (await _try(guesser, ALICE)).status_code == 303
        assert (await guesser.get("/instances")).status_code == 200


@pytest.mark.parametrize("console_at", [SignInLimit(per_client=3, per_client_every=60,
                                                    overall=5, overall_every=30)],
                         indirect=True)
async def test_many_addresses_together_are_limited_too(console_at: tuple[str, ManualClock]
                                                        ) -> None:
    url, clock = console_at
    clients = [_client(url, f"127.0.0.{n}") for n in range(2, 6)]
    try:
        codes = [(await _try(c, WRONG)).status_code for c in clients]
        codes += [(await _try(c, WRONG)).status_code for c in clients[:1]]
        assert codes == [401] * 5
        late = await _try(clients[3], WRONG)  # its own bucket is full; the overall is not
        assert late.status_code == 429 and int(late.headers["retry-after"]) <= 30
        clock.advance(31)
        assert (await _try(clients[3], ALICE)).status_code == 303
    finally:
        for c in clients:
            await c.aclose()
