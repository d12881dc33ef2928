"""Opening a SQLite file: what is refused untouched, and what opens without a write lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agentflow import Engine, Event, InvalidArgumentError, Step
from agentflow.store._migrations import SCHEMA_VERSION


async def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"folder .* does not exist"):
        async with Engine(f"sqlite:///{tmp_path}/no/such/af.db"):
            pass
    assert not (tmp_path / "no").exists()


async def test_a_foreign_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(InvalidArgumentError, match=r"not an agentflow database.*\['users'\]"):
        async with Engine(f"sqlite:///{path}"):
            pass
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master")]
        assert tables == ["users"] and db.execute("PRAGMA user_version").fetchone() == (0,)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "af.db"
    async with Engine(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(InvalidArgumentError, match="newer agentflow"):
        async with Engine(f"sqlite:///{path}"):
            pass


async def test_a_current_database_opens_and_reads_while_another_holds_the_write_lock(
        tmp_path: Path) -> None:
    path = tmp_path / "af.db"
    async with Engine(f"sqlite:///{path}") as engine:
        @engine.workflow("w")
        async def w(event: Event, step: Step) -> int:
            return 1

        await engine.binding("w").create(id="one")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # a writer elsewhere, mid-transaction
        async with Engine(f"sqlite:///{path}", run_scheduler=False) as reader:
            assert [s.id for s in await reader.list_instances()] == ["one"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_file_locked_past_the_retries_is_an_agentflow_error_that_changed_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentflow.errors import AgentflowError, StoreUnavailableError
    from agentflow.store import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "_BUSY_RETRY_SECONDS", 0.3)  # not a minute
    path = tmp_path / "af.db"
    engine = Engine(sqlite_store.SQLiteStore(str(path), busy_timeout=0.05),
                    run_scheduler=False)

    @engine.workflow("w")
    async def w(event: Event, step: Step) -> int:
        return 1

    async with engine:
        inst = await engine.binding("w").create(id="one")
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")  # another process, mid-write, for long
            with pytest.raises(StoreUnavailableError) as caught:
                await inst.send_event("go", {"n": 1})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert isinstance(caught.value, AgentflowError)
        text = str(caught.value)
        assert "database is locked" in text and "nothing was changed" in text
        assert await engine.store.pending_events("one", "go") == []
