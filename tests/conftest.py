from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from agentflow import Engine
from agentflow.testing import ManualClock


async def eventually(predicate: Callable[[], Awaitable[Any] | Any], *, timeout: float = 10.0,
                     interval: float = 0.01, what: str = "condition") -> Any:
    """Wait until ``predicate()`` is truthy (sync or async), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def engine(clock: ManualClock) -> AsyncIterator[Engine]:
    """An engine on the in-memory store with a manual clock. Register workflows on it
    before using `engine.binding`; it is already started."""
    eng = Engine("memory://", clock=clock)
    async with eng:
        yield eng


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/agentflow.db"


POSTGRES_ENV = "AGENTFLOW_TEST_POSTGRES_URL"


def postgres_server() -> str:
    """The PostgreSQL server the suite may use, from ``$AGENTFLOW_TEST_POSTGRES_URL``.

    In CI (``$CI`` set) a missing server fails the test: the PostgreSQL suite must not
    be skipped there (``.ci/run`` starts a server). Elsewhere the test is skipped.
    """
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"${POSTGRES_ENV} is not set, and in CI the PostgreSQL tests must run: "
                    ".ci/run starts a server and sets it", pytrace=False)
    pytest.skip(f"no PostgreSQL server: set ${POSTGRES_ENV}=postgresql://user@host:port/db "
                "to run the PostgreSQL tests")


def schema_url(url: str, schema: str) -> str:
    """``url`` with libpq's ``options=-csearch_path=<schema>`` added to its query, and the
    schema as ``application_name`` (so a test can find its own connections)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query)
             if k not in ("options", "application_name")]
    query += [("options", f"-csearch_path={schema}"), ("application_name", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh, empty schema on the test server, dropped after the test."""
    server = postgres_server()
    import psycopg

    schema = f"agentflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
