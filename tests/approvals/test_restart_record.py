"""An operator's restart and the record of who made it are one transaction: both are
written, or neither (a crash, or a failed insert, between the two used to leave a
restart nobody was recorded as making)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.approvals.conftest import AGENT, PAY_PLAN, Setup

HUMAN = {"approved": True, "comment": "ok", "by": "human"}


@contextmanager
def operator_log_refuses_inserts(url: str) -> Iterator[None]:
    """A trigger in the test's database that makes every insert into the operator log
    fail, as a crash or a full disk would, dropped afterwards."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TRIGGER refuse_log BEFORE INSERT ON operator_log"
                         " BEGIN SELECT RAISE(ABORT, 'the operator log refuses'); END")
        try:
            yield
        finally:
            with sqlite3.connect(path) as conn:
                conn.execute("DROP TRIGGER refuse_log")
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION refuse_log() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$ BEGIN RAISE EXCEPTION 'the operator log refuses'; END $$")
        conn.execute("CREATE TRIGGER refuse_log BEFORE INSERT ON operator_log"
                     " FOR EACH ROW EXECUTE FUNCTION refuse_log()")
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse_log ON operator_log")
            conn.execute("DROP FUNCTION refuse_log()")


async def test_a_restart_whose_record_fails_does_not_happen(setup: Setup) -> None:
    agent = setup.af.agent(AGENT)
    await agent.submit_plan("pay", PAY_PLAN)
    inst = await agent.start("pay", params={"amount": 5}, id="pay-r")
    assert (await inst.wait(timeout=60)).status == "waiting"
    await agent.send_event("pay-r", "approval", HUMAN)
    done = await inst.wait(timeout=60)
    assert done.output == {"paid": 5, "receipt": "receipt-1"}, done
    before = await inst.history()

    with operator_log_refuses_inserts(setup.url), pytest.raises(
            Exception, match="the operator log refuses"):  # the database's own error
        await inst.restart("pay", by="ops@example.com")
    # Neither the restart nor its record: the instance is as it was, and pays no more.
    assert (await inst.status()).status == "complete"
    assert await inst.history() == before
    assert await inst.restarts() == []
    assert setup.payments.charges == [5]

    await inst.restart("pay", by="ops@example.com")  # with the log working: both
    [record] = await inst.restarts()
    assert record.actor == "ops@example.com" and record.value == {"from_step": "pay"}
    assert (await inst.wait(timeout=60)).output == {"paid": 5, "receipt": "receipt-2"}
    assert setup.payments.charges == [5, 5]
