"""The host's side of one run: answers a worker's step and capability calls.

A `RunDriver` turns each ``step`` message into ``await host.step(op, args, run_body)``
and each ``cap`` message into ``await host.capability(...)``, in their own tasks, so a
plan may have several calls in flight (``gather``). Every message from the worker is
untrusted: fields are type-checked, and a malformed message raises `ProtocolError`,
which makes the connection kill the worker.

Suspension: when ``host.step`` raises a `BaseException` that is not an `Exception`
(the engine's suspension signal), the driver abandons the run (cancels its other host
calls, tells the worker to cancel the plan, waits for the acknowledgement) and
re-raises that same object from `wait`.

(Over 400 lines, on purpose: the driver is one state machine over untrusted
messages; splitting the message kinds across modules would hide which state each may
arrive in, which is what a reviewer of the boundary must check.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sandbox._errors import PlanRuntimeError, RemoteError, WorkerCrashedError
from sandbox._hostapi import PlanHost
from sandbox._located import read_logs, read_where
from sandbox._protocol import (
    ProtocolError,
    decode_datetimes,
    error_payload,
    need_field,
    pack_value,
    read_error,
    unpack_value,
)
from sandbox._validate import STEP_METHODS

__all__ = ["RunDriver"]

Send = Callable[[dict[str, Any]], None]

#: A run with more host calls than this in flight is killed (a flooding worker).
MAX_CALLS_IN_FLIGHT = 1024
#: At most this long, a cancelled body's attempt waits for what it printed before the
#: cancel (the worker answers at once; a body that does not yield gets its worker killed
#: after `Limits.cancel_grace`, which ends the wait too).
CANCEL_REPLY_SECONDS = 10.0
_METHOD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")


class LimitExceededError(Exception):
    """A quota refused a call; only its name crosses to the plan and the agent layer
    (which raises its own `LimitExceededError`)."""


class RunDriver:
    """Host side of one run of a plan in one worker (or inline `PlanSide`)."""

    def __init__(self, run_id: int, host: PlanHost, send: Send,
                 capabilities: frozenset[str] = frozenset(), *,
                 max_bytes_in_flight: int | None = None) -> None:
        self.run_id = run_id
        # Bytes received and not yet done with: per step call (its message and its
        # bodies' results, until the host's step returns) and per capability call.
        self._max_bytes = max_bytes_in_flight
        self.bytes_in_flight = 0
        self._held: dict[tuple[str, int], int] = {}
        self._body_calls: dict[int, int] = {}
        self._host = host
        self._send = send
        self._capabilities = capabilities
        self._finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._step_tasks: dict[int, asyncio.Task[None]] = {}
        self._bodies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # Bodies cancelled by the host (a step's timeout): the worker's last word on each,
        # with what it printed before the cancel.
        self._cancelled: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._calls_in_body: dict[int, int] = {}  # step call -> bodies in flight
        self._body_ids = itertools.count(1)
        self._suspension: BaseException | None = None
        self._lost: WorkerCrashedError | None = None
        self._closing = False

    # -- messages from the worker --------------------------------------------------------

    def on_message(self, message: dict[str, Any], size: int = 0) -> None:
        """Handle one message (``size`` bytes on the wire) for this run. Raises
        `ProtocolError`."""
        kind = message["t"]
        if kind in ("step", "cap") and len(self._tasks) >= MAX_CALLS_IN_FLIGHT:
            raise ProtocolError(f"more than {MAX_CALLS_IN_FLIGHT} calls in flight")
        if kind == "step":
            call = need_field(message, "call", int)
            if not self._hold(("step", call), size):
                self._reply({"t": "step_err", "call": call,
                             "error": error_payload(self._over(size, "a step call"))})
                return
            op = need_field(message, "op", str)
            args = need_field(message, "args", dict)
            if op not in STEP_METHODS:
                raise ProtocolError(f"unknown step op {op!r}")
            if STEP_METHODS[op] and not isinstance(args.get("name"), str):
                raise ProtocolError(f"step {op!r} needs a str name")
            args = decode_datetimes(message, args)
            self._step_tasks[call] = self._spawn(self._serve_step(
                call, op, args, read_logs(message.get("logs"))))
        elif kind == "cap":
            call = need_field(message, "call", int)
            name, method = need_field(message, "name", str), need_field(message, "method", str)
            args, kwargs = need_field(message, "args", list), need_field(message, "kwargs", dict)
            # The plan's stubs only allow these; a worker that sends others has escaped.
            if name not in self._capabilities or not _METHOD.match(method):
                raise ProtocolError(f"capability call {name}.{method} was not granted")
            # The body it names must be in flight: a call kept from an ended body, or
            # made outside any, is a side effect no step would record.
            if message.get("body") not in self._bodies:
                self._reply({"t": "cap_err", "call": call, "error": error_payload(
                    RuntimeError(f"env.{name}.{method}() was called outside the step body "
                                 f"that made it, or after it ended"))})
                return
            if not self._hold(("cap", call), size):
                self._reply({"t": "cap_err", "call": call, "error": error_payload(
                    self._over(size, f"the call of env.{name}.{method}()"))})
                return
            self._spawn(self._serve_capability(call, name, method, args, kwargs))
        elif kind in ("body_ok", "body_err", "body_cancelled") and (
                need_field(message, "body", int) in self._cancelled):
            ended = self._cancelled[message["body"]]  # its attempt is over: only the logs
            if not ended.done():
                ended.set_result(message)
        elif kind == "body_cancelled":
            pass  # a body the host no longer waits for (the run was abandoned)
        elif kind in ("body_ok", "body_err"):
            body = need_field(message, "body", int)
            future = self._bodies.get(body)
            if future is not None and not future.done():
                call = self._body_calls.get(body, 0)
                if not self._hold(("step", call), size):  # refused: the result is dropped
                    refusal = RemoteError("LimitExceededError",
                                          str(self._over(size, "a step's result")),
                                          final=True)
                    refusal.quota = True  # the host's, not the plan's: no worker can forge it
                    future.set_exception(refusal)
                else:
                    future.set_result(message)
        elif kind == "done":
            value = unpack_value(message)
            self._log(read_logs(message.get("logs")))
            self._settle(value=value)
        elif kind == "fail":
            error = message.get("error")
            name, text, _error_name, _args = read_error(error)
            assert isinstance(error, dict)  # read_error checked it
            step, after = error.get("step"), error.get("after_step")
            self._log(read_logs(message.get("logs")))
            self._settle(error=PlanRuntimeError(
                name, text, where=read_where(error.get("where")),
                step=step[:256] if isinstance(step, str) else None,
                after_step=after[:256] if isinstance(after, str) else None,
                returned=error.get("returned") is True))
        elif kind == "cancelled":
            self._settle(error=PlanRuntimeError("CancelledError", "the run was abandoned"))
        else:
            raise ProtocolError(f"unexpected message {kind!r}")

    def on_worker_lost(self, error: WorkerCrashedError) -> None:
        """The worker died: fail the bodies in flight and end the run with ``error``."""
        if self._lost is not None:
            return
        self._lost = error
        for future in self._bodies.values():
            if not future.done():
                future.set_exception(error)
        for future in self._cancelled.values():
            if not future.done():
                future.set_result({})  # nothing more will come
        # A step whose body just failed finishes by itself: the host records the failed
        # attempt and may suspend (to retry later in a fresh worker). Every other host
        # call is moot.
        keep = {self._step_tasks.get(call) for call in self._calls_in_body}
        self._closing = True  # the cancellations below are ours, not the host's signal
        for task in self._tasks:
            if task not in keep:
                task.cancel()
        self._settle(error=error)

    # -- bytes in flight -----------------------------------------------------------------

    def _hold(self, key: tuple[str, int], size: int) -> bool:
        """Count ``size`` more bytes held for ``key``; False (nothing counted) if that
        would pass ``max_bytes_in_flight``."""
        if self._max_bytes is not None and self.bytes_in_flight + size > self._max_bytes:
            return False
        self.bytes_in_flight += size
        self._held[key] = self._held.get(key, 0) + size
        return True

    def _let_go(self, key: tuple[str, int]) -> None:
        self.bytes_in_flight -= self._held.pop(key, 0)

    def _over(self, size: int, what: str) -> LimitExceededError:
        return LimitExceededError(
            f"{what} ({size:,} bytes) was refused: this run already has "
            f"{self.bytes_in_flight:,} bytes in flight between its worker and the host, and "
            f"the quota is {self._max_bytes:,} (bytes in flight per run: the operator sets "
            f"it with Quotas(run_bytes_in_flight=...), or Limits(max_bytes_in_flight=...) "
            f"for a WorkerPool); await fewer large steps at once, e.g. gather in smaller "
            f"batches")

    # -- serving calls -------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _reply(self, message: dict[str, Any]) -> None:
        if self._lost is not None or self._closing:
            return
        try:
            self._send({**message, "run": self.run_id})
        except WorkerCrashedError:
            pass  # on_worker_lost does the rest
        except (TypeError, ValueError) as exc:  # the host's value is not JSON or too big
            if message["t"].endswith("_ok"):
                self._reply({"t": message["t"][:-3] + "_err", "call": message["call"],
                             "error": error_payload(TypeError(str(exc)))})

    def _log(self, lines: list[str]) -> None:
        log = getattr(self._host, "log", None)
        if lines and log is not None:
            log(lines)

    async def _serve_step(self, call: int, op: str, args: dict[str, Any],
                          logs: list[str]) -> None:
        run_body, expire = self._make_run_body(call) if op == "do" else (None, None)
        try:
            self._log(logs)
            value = await self._host.step(op, args, run_body)
        except Exception as exc:
            payload = error_payload(exc)
            where = getattr(exc, "where", None)  # a step body's location, from the host
            if isinstance(where, dict):
                payload["where"] = where
            self._reply({"t": "step_err", "call": call, "error": payload})
        except BaseException as exc:  # the host's suspension signal
            if not (self._closing and isinstance(exc, asyncio.CancelledError)):
                self._abandon(exc)
        else:
            self._reply({"t": "step_ok", "call": call, **pack_value(value)})
        finally:
            self._step_tasks.pop(call, None)
            self._let_go(("step", call))
            if expire is not None:
                expire()

    async def _serve_capability(self, call: int, name: str, method: str, args: list[Any],
                                kwargs: dict[str, Any]) -> None:
        try:
            await self._capability(call, name, method, args, kwargs)
        finally:
            self._let_go(("cap", call))

    async def _capability(self, call: int, name: str, method: str, args: list[Any],
                          kwargs: dict[str, Any]) -> None:
        try:
            value = await self._host.capability(name, method, args, kwargs)
        except Exception as exc:
            payload = error_payload(exc)
            if getattr(exc, "final", False) is True or isinstance(exc, TypeError):
                payload["final"] = True  # a refusal, or arguments the method rejects
            self._reply({"t": "cap_err", "call": call, "error": payload})
        except BaseException as exc:
            if not (self._closing and isinstance(exc, asyncio.CancelledError)):
                self._abandon(exc)
        else:
            self._reply({"t": "cap_ok", "call": call, **pack_value(value)})

    def _make_run_body(self, call: int
                       ) -> tuple[Callable[[], Awaitable[Any]], Callable[[], None]]:
        expired = False

        async def run_body() -> Any:
            if expired:
                raise RuntimeError("run_body() was called after host.step() returned")
            if self._lost is not None:
                raise self._lost
            body = next(self._body_ids)
            future: asyncio.Future[dict[str, Any]] = (
                asyncio.get_running_loop().create_future())
            self._bodies[body] = future
            self._body_calls[body] = call
            self._calls_in_body[call] = self._calls_in_body.get(call, 0) + 1
            try:
                self._send({"t": "body", "run": self.run_id, "call": call, "body": body})
                reply = await future
            except asyncio.CancelledError:  # e.g. the host's per-attempt timeout
                if self._lost is None:
                    await self._cancel_body(body)
                raise
            finally:
                self._bodies.pop(body, None)
                self._body_calls.pop(body, None)
                self._calls_in_body[call] -= 1
                if not self._calls_in_body[call]:
                    del self._calls_in_body[call]
            self._log(read_logs(reply.get("logs")))
            if reply["t"] == "body_err":
                error = reply.get("error")
                name, text, error_name, _args = read_error(error)
                assert isinstance(error, dict)  # read_error checked it
                raise RemoteError(error_name or name, text,
                                  where=read_where(error.get("where")),
                                  final=error.get("final") is True)
            return unpack_value(reply)

        def expire() -> None:
            nonlocal expired
            expired = True

        return run_body, expire

    async def _cancel_body(self, body: int) -> None:
        """Tell the worker to cancel ``body`` and, unless the whole run is being
        abandoned, keep what the body printed before the cancel with its attempt (we
        are still in the attempt's task: its log is the host's current one)."""
        ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if not self._closing:
            self._cancelled[body] = ended
        try:
            self._send({"t": "body_cancel", "run": self.run_id, "body": body})
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCEL_REPLY_SECONDS):
                    reply = await ended
                    self._log(read_logs(reply.get("logs")))
        except Exception:
            pass  # the worker is gone: on_worker_lost does the rest
        finally:
            self._cancelled.pop(body, None)

    # -- ending --------------------------------------------------------------------------

    def _settle(self, *, value: Any = None, error: BaseException | None = None) -> None:
        if self._finished.done():
            return
        if error is not None:
            self._finished.set_exception(error)
        else:
            self._finished.set_result(value)

    def _cancel_tasks(self, *, but: asyncio.Task[Any] | None = None) -> None:
        self._closing = True
        for task in list(self._tasks):
            if task is not but:
                task.cancel()

    def _abandon(self, signal: BaseException) -> None:
        if self._suspension is not None:
            return
        self._suspension = signal
        self._cancel_tasks(but=asyncio.current_task())
        if self._lost is None:
            try:
                self._send({"t": "cancel", "run": self.run_id})
            except Exception:
                self._settle(error=WorkerCrashedError("the worker could not be told to "
                                                      "cancel the run"))

    async def wait(self) -> Any:
        """Wait for the run's end; return its value or raise (see the module doc)."""
        try:
            await asyncio.wait([self._finished])
        except asyncio.CancelledError:
            # Our caller was cancelled: abandon the run in the worker, without waiting.
            self._cancel_tasks()
            if self._lost is None and self._suspension is None:
                with contextlib.suppress(Exception):
                    self._send({"t": "cancel", "run": self.run_id})
            self._close()
            raise
        try:
            if self._lost is not None:
                pending = [task for task in self._tasks if not task.done()]
                if pending:
                    await asyncio.wait(pending)
            if self._suspension is not None:
                raise self._suspension
            return self._finished.result()
        finally:
            self._close()

    def _close(self) -> None:
        self._cancel_tasks()
        if not self._finished.done():
            self._finished.cancel()
        elif not self._finished.cancelled():
            self._finished.exception()  # mark it retrieved
