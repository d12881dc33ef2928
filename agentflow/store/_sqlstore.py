"""`SQLStore`: the `Store` whose every operation is a body of ``_rules.py``.

A backend subclasses it with its `Dialect` and two drivers, `SQLStore._write` (one
transaction, retried as that database needs) and `SQLStore._read`; everything else,
the contract's rules included, is shared.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from agentflow.store import _base as base
from agentflow.store import _rules as rules
from agentflow.store import _schedule_rules as housekeeping
from agentflow.store._group import GroupCommitter
from agentflow.store._sql import Body, Dialect, Do, Many, Q, chunks, marks

__all__ = ["SQLStore"]

T = TypeVar("T")


class SQLStore(base.Store):
    """A `Store` whose every operation is a body above; a backend supplies the dialect
    and the two drivers: `_write` (one transaction, retried as the backend needs) and
    `_read` (no transaction needed)."""

    dialect: Dialect

    def __init__(self) -> None:
        self._committer = GroupCommitter(self._write_commits)

    @abc.abstractmethod
    async def _write(self, body: Callable[[], Body[T]], *, idempotent: bool = False) -> T:
        """Run ``body()`` as one transaction. A retry calls ``body`` again, so it must
        make a fresh generator. ``idempotent``: running it twice does no harm (a
        backend may then repeat it when a lost connection left the outcome unknown)."""

    @abc.abstractmethod
    async def _read(self, body: Callable[[], Body[T]]) -> T:
        """Run ``body()`` for reading."""

    async def _write_commits(self, commits: list[base.RunCommit]) -> list[base.CommitResult]:
        # Idempotent: written again after a lost COMMIT, the same rows come out.
        return await self._write(lambda: rules.write_batch(self.dialect, commits), idempotent=True)

    # -- instances -----------------------------------------------------------------
    async def create_instances(self, rows: Sequence[base.NewInstance],
                               quota: base.ScopeQuota | None = None) -> list[str]:
        if not rows:
            return []
        if quota is None:
            return await self._write(lambda: rules.create_instances(rows))

        def body() -> Body[list[str]]:
            if self.dialect.scope_lock:  # two writers must not both pass the check
                yield Q(self.dialect.scope_lock, (f"instances:{quota.scope}",))
            yield from rules.check_scope_quota(quota, len(rows))
            return (yield from rules.create_instances(rows))

        return await self._write(body)

    async def get_instance(self, instance_id: str) -> base.InstanceRow | None:
        return await self._read(lambda: rules.get_instance(instance_id))

    async def list_instances(self, *, workflows: Sequence[str] | None = None,
                             statuses: Sequence[str] | None = None,
                             scopes: Sequence[str] | None = None, limit: int = 100,
                             offset: int = 0, before: tuple[float, str] | None = None,
                             plans: Sequence[str] | None = None) -> list[base.InstanceRow]:
        return await self._read(lambda: rules.list_instances(
            self.dialect, _list(workflows), _list(statuses), _list(scopes), limit, offset,
            before, _list(plans)))

    async def transition(self, instance_id: str,
                         decide: Callable[[base.InstanceRow], base.InstanceChange | None]
                         ) -> base.InstanceRow | None:
        return await self._write(lambda: rules.transition(self.dialect, instance_id, decide))

    # -- scheduling ----------------------------------------------------------------
    async def claim_due_instances(self, *, owner: str, workflows: Sequence[str], now: float,
                                  lease_now: float | None = None,
                                  lease_until: float | None = None, limit: int,
                                  lease_seconds: float | None = None
                                  ) -> list[base.InstanceRow]:
        if not workflows or limit <= 0:
            return []
        return await self._write(lambda: rules.claim_due_instances(
            self.dialect, owner, list(workflows), now, lease_now, lease_until, lease_seconds,
            limit), idempotent=True)

    async def next_due_at(self, workflows: Sequence[str], *,
                          lease_now: float | None = None) -> float | None:
        if not workflows:
            return None
        return await self._read(lambda: rules.next_due_at(self.dialect, list(workflows),
                                                          lease_now))

    async def renew_leases(self, *, owner: str, instance_ids: Sequence[str],
                           lease_until: float | None = None,
                           lease_seconds: float | None = None) -> list[str]:
        if not instance_ids:
            return []
        return await self._write(lambda: rules.renew_leases(
            self.dialect, owner, instance_ids, lease_until, lease_seconds), idempotent=True)

    async def release_leases(self, *, owner: str, instance_ids: Sequence[str],
                             now: float) -> None:
        if instance_ids:
            await self._write(lambda: rules.release_leases(owner, instance_ids, now),
                              idempotent=True)

    # -- journal and events --------------------------------------------------------
    async def load_journal(self, instance_id: str) -> list[base.JournalRow]:
        return await self._read(lambda: rules.load_journal(instance_id))

    async def commit(self, commit: base.RunCommit) -> base.CommitResult:
        return await self._committer.submit(commit)

    async def add_event(self, instance_id: str, type: str, payload: str, now: float,
                        decide: Callable[[base.InstanceRow], base.InstanceChange | None],
                        wait_seq: Callable[[base.InstanceRow], int | None] | None = None
                        ) -> bool:
        return await self._write(lambda: rules.add_event(self.dialect, instance_id, type, payload,
                                                   now, decide, wait_seq))

    async def pending_events(self, instance_id: str, type: str, *, exclude: Sequence[int] = (),
                             limit: int = 1, wait_seq: int | None = None
                             ) -> list[base.EventRow]:
        return await self._read(lambda: rules.pending_events(instance_id, type, list(exclude),
                                                       limit, wait_seq))

    # -- plan versions and key-value -----------------------------------------------
    async def put_plan_version(self, plan: base.PlanRow) -> base.PlanRow:
        return await self._write(lambda: rules.put_plan_version(plan), idempotent=True)

    async def get_plan_version(self, scope: str, name: str, version: str | None = None
                               ) -> base.PlanRow | None:
        return await self._read(lambda: rules.get_plan_version(scope, name, version))

    async def list_plans(self, scope: str | None) -> list[base.PlanRow]:
        return await self._read(lambda: rules.list_plans(scope))

    async def list_plan_versions(self, scope: str, name: str) -> list[base.PlanRow]:
        return await self._read(lambda: rules.list_plan_versions(self.dialect, scope, name))

    # -- the change feed -----------------------------------------------------------
    async def read_changes(self, after: int, limit: int = 500) -> list[base.ChangeRow]:
        await self._number_changes()
        return await self._read(lambda: rules.read_changes(after, limit))

    async def last_change(self) -> int:
        await self._number_changes()
        return await self._read(rules.last_change)

    async def trim_changes(self, before: float) -> int:
        await self._number_changes()  # an unnumbered row is never trimmed unseen
        return await self._write(lambda: rules.trim_changes(before), idempotent=True)

    async def _number_changes(self) -> None:
        """Make every committed change visible under its final number. SQLite numbers
        them as they are written (one writer at a time); PostgreSQL overrides this."""

    async def kv_get(self, scope: str, key: str) -> str | None:
        rows = await self._read(lambda: rules.one(Q(
            "SELECT value FROM kv WHERE scope = ? AND key = ?", (scope, key))))
        return None if not rows else str(rows[0][0])

    async def kv_set(self, scope: str, key: str, value: str, now: float) -> None:
        await self._write(lambda: rules.one(Q(
            "INSERT INTO kv (scope, key, value, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at RETURNING 1",
            (scope, key, value, float(now)))), idempotent=True)

    async def kv_add(self, scope: str, key: str, value: str, now: float) -> bool:
        rows = await self._write(lambda: rules.one(Q(
            "INSERT INTO kv (scope, key, value, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, key) DO NOTHING RETURNING 1",
            (scope, key, value, float(now)))))
        return bool(rows)

    async def kv_set_within(self, scope: str, key: str, value: str, now: float, *,
                            max_keys: int, max_bytes: int) -> tuple[int, int] | None:
        size = f"{self.dialect.octets.format('key')} + {self.dialect.octets.format('value')}"

        def body() -> Body[tuple[int, int] | None]:
            if self.dialect.scope_lock:  # two writers must not both pass the check
                yield Q(self.dialect.scope_lock, (f"kv:{scope}",))
            total = yield Q(f"SELECT count(*), coalesce(sum({size}), 0) FROM kv"
                            f" WHERE scope = ?", (scope,))
            old = yield Q(f"SELECT {size} FROM kv WHERE scope = ? AND key = ?", (scope, key))
            keys = int(total[0][0]) + (0 if old else 1)
            used = (int(total[0][1]) - (int(old[0][0]) if old else 0)
                    + len(key.encode()) + len(value.encode()))
            if keys > max_keys or used > max_bytes:
                return keys, used
            yield Q("INSERT INTO kv (scope, key, value, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,"
                    " updated_at = excluded.updated_at RETURNING 1",
                    (scope, key, value, float(now)))
            return None

        return await self._write(body)

    async def kv_usage(self, scope: str) -> tuple[int, int]:
        size = f"{self.dialect.octets.format('key')} + {self.dialect.octets.format('value')}"
        rows = await self._read(lambda: rules.one(Q(
            f"SELECT count(*), coalesce(sum({size}), 0) FROM kv WHERE scope = ?", (scope,))))
        return int(rows[0][0]), int(rows[0][1])

    async def mark_slot_waits(self, owner: str, waiting: Mapping[str, float],
                              granted: Sequence[str]) -> None:
        def body() -> Body[None]:
            if waiting:
                yield Many("UPDATE instances SET slot_wait_since = ? WHERE id = ?"
                           " AND lease_owner = ?",
                           [(float(since), instance_id, owner)
                            for instance_id, since in waiting.items()])
            for chunk in chunks(list(granted)):
                yield Do(f"UPDATE instances SET slot_wait_since = NULL WHERE id IN"
                         f" ({marks(chunk)}) AND lease_owner = ?", [*chunk, owner])

        if waiting or granted:
            await self._write(body, idempotent=True)

    async def instance_marks(self, instance_ids: Sequence[str]
                             ) -> dict[str, tuple[Any, ...]]:
        found: dict[str, tuple[Any, ...]] = {}
        for chunk in chunks(list(instance_ids)):
            query = Q(f"SELECT id, status, due_at, fence, updated_at FROM instances"
                      f" WHERE id IN ({marks(chunk)})", list(chunk))
            rows = await self._read(functools.partial(rules.one, query))
            found.update((str(r[0]), tuple(r[1:])) for r in rows)
        return found

    async def get_fences(self, instance_ids: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for chunk in chunks(list(instance_ids)):
            query = Q(f"SELECT id, fence FROM instances WHERE id IN ({marks(chunk)})",
                      list(chunk))
            rows = await self._read(functools.partial(rules.one, query))
            found.update((str(r[0]), int(r[1])) for r in rows)
        return found

    async def count_instances(self, *, scope: str, statuses: Sequence[str] | None = None
                              ) -> int:
        where, params = "scope = ?", [scope]
        if statuses is not None:
            where += f" AND status IN ({','.join('?' * len(statuses))})"
            params += list(statuses)
        rows = await self._read(lambda: rules.one(Q(
            f"SELECT count(*) FROM instances WHERE {where}", params)))
        return int(rows[0][0])

    async def kv_delete(self, scope: str, key: str) -> bool:
        rows = await self._write(lambda: rules.one(Q(
            "DELETE FROM kv WHERE scope = ? AND key = ? RETURNING 1", (scope, key))),
            idempotent=True)
        return bool(rows)

    async def kv_list(self, scope: str, prefix: str = "", limit: int = 1000) -> list[str]:
        # Not LIKE: SQLite's LIKE ignores ASCII case, and keys are case-sensitive; the
        # range lets either database use the primary key's index.
        rows = await self._read(lambda: rules.one(Q(
            "SELECT key FROM kv WHERE scope = ? AND key >= ?"
            " AND substr(key, 1, length(CAST(? AS text))) = ? ORDER BY key LIMIT ?",
            (scope, prefix, prefix, prefix, limit))))
        return [str(r[0]) for r in rows]

    # -- the operator's log ---------------------------------------------------------
    async def append_operator_log(self, kind: str, subject: str, value: str, *, at: float,
                                  actor: str) -> None:
        # Not idempotent: a retried append would log the decision twice.
        await self._write(lambda: rules.one(Q(
            "INSERT INTO operator_log (kind, subject, value, at, actor)"
            " VALUES (?, ?, ?, ?, ?) RETURNING 1",
            (kind, subject, value, float(at), actor))))

    async def read_operator_log(self, kind: str, subject: str | None = None
                                ) -> list[base.OperatorLogRow]:
        if subject is None:
            query = Q("SELECT id, kind, subject, value, at, actor FROM operator_log"
                      " WHERE kind = ? ORDER BY id", (kind,))
        else:
            query = Q("SELECT id, kind, subject, value, at, actor FROM operator_log"
                      " WHERE kind = ? AND subject = ? ORDER BY id", (kind, subject))
        rows = await self._read(lambda: rules.one(query))
        return [base.OperatorLogRow(*r) for r in rows]
    # -- schedules, live workers and retention (``_schedule_rules.py``) -------------
    async def put_schedule(self, row: base.ScheduleRow, *, replace: bool) -> bool:
        return await self._write(lambda: housekeeping.put_schedule(row, replace))

    async def get_schedule(self, scope: str, name: str) -> base.ScheduleRow | None:
        return await self._read(lambda: housekeeping.get_schedule(scope, name))

    async def list_schedules(self, scope: str | None) -> list[base.ScheduleRow]:
        return await self._read(lambda: housekeeping.list_schedules(scope))

    async def delete_schedule(self, scope: str, name: str) -> bool:
        return await self._write(lambda: housekeeping.delete_schedule(scope, name),
                                 idempotent=True)

    async def set_schedule_paused(self, scope: str, name: str, paused: bool, *, now: float,
                                  next_fire_at: float | None) -> bool:
        return await self._write(lambda: housekeeping.set_schedule_paused(
            scope, name, paused, now, next_fire_at))

    async def due_schedules(self, now: float, limit: int) -> list[base.ScheduleRow]:
        return await self._read(lambda: housekeeping.due_schedules(now, limit))

    async def next_schedule_at(self) -> float | None:
        return await self._read(housekeeping.next_schedule_at)

    async def record_fire(self, fire: base.ScheduleFire) -> list[str] | None:
        return await self._write(lambda: housekeeping.record_fire(fire))

    async def worker_seen(self, owner: str, *, now: float, alive_until: float) -> None:
        await self._write(lambda: housekeeping.worker_seen(owner, now, alive_until),
                          idempotent=True)

    async def worker_gone(self, owner: str) -> None:
        await self._write(lambda: housekeeping.worker_gone(owner), idempotent=True)

    async def live_workers(self, now: float) -> list[str]:
        return await self._read(lambda: housekeeping.live_workers(now))

    async def finished_instance_ids(self, *, statuses: Sequence[str],
                                    finished_before: float | None,
                                    scopes: Sequence[str] | None, unscoped: bool = False,
                                    exclude_scopes: Sequence[str] = (),
                                    limit: int) -> list[str]:
        return await self._read(lambda: housekeeping.finished_instance_ids(
            list(statuses), finished_before, _list(scopes), unscoped, list(exclude_scopes),
            limit))

    async def delete_instances(self, instance_ids: Sequence[str], *,
                               statuses: Sequence[str] | None = None) -> list[str]:
        if not instance_ids:
            return []
        return await self._write(lambda: housekeeping.delete_instances(
            list(instance_ids), _list(statuses)), idempotent=True)

    async def reclaim_space(self, *, max_pages: int | None = None, full: bool = False) -> int:
        """Nothing to do by default: PostgreSQL's autovacuum makes deleted rows' space
        reusable by itself (a full VACUUM that returns it to the file system locks the
        tables, and is the DBA's call). SQLite overrides this."""
        return 0

    async def get_retention(self) -> dict[str, float]:
        return await self._read(housekeeping.get_retention)

    async def set_retention(self, scope: str, keep_seconds: float | None, now: float) -> None:
        await self._write(lambda: housekeeping.set_retention(scope, keep_seconds, now),
                          idempotent=True)


def _list(values: Iterable[str] | None) -> list[str] | None:
    return None if values is None else list(values)
