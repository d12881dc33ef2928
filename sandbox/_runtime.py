"""The plan's side of the protocol: runs plans and turns their calls into messages.

`PlanSide` runs inside a confined worker (process isolation) or in the host's event loop
(inline isolation); either way it only speaks messages, through a ``send`` callable that
encodes them as JSON frames. One `PlanSide` serves all concurrent runs of one agent.

What plan code gets:

- ``event``: `PlanEvent` with ``payload``, ``timestamp`` (an aware ``datetime`` when the
  ISO text parses, else the text) and ``instance_id``.
- ``step``: `PlanStep`. Every method is a coroutine that sends a ``step`` message and
  waits for the host's answer; ``step.do`` keeps ``fn`` here and runs it when the host
  asks (``body``), as often as the host asks.
- ``env``: `PlanEnv` with one `CapabilityStub` per granted capability. A capability
  method returns an awaitable, to be called and awaited in one step body (so its effects
  are journaled): ``await step.do("get", lambda: env.http.get_json(url))``.

Plan code runs in a task wrapped so that no exception, `BaseException` included, leaves
it: `SystemExit`, `KeyboardInterrupt`, `GeneratorExit` would escape or break the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sandbox._compile import CompiledPlan, compile_plan
from sandbox._errors import MessageTooLargeError, PlanValidationError
from sandbox._located import MAX_TRACE_FRAMES, LogBuffer, describe_error, locate, read_where
from sandbox._namespace import (
    LOG_SINK,
    StepError,
    plan_globals,
)
from sandbox._plan_values import PlanEvent, rebuild_error
from sandbox._protocol import ProtocolError, error_payload, pack_value, unpack_value
from sandbox._stubs import _BODY_ID, _BODY_RUN, PlanEnv, PlanStep

__all__ = ["PlanSide"]

Send = Callable[[dict[str, Any]], None]


class _Run:
    """One run of a plan: its task, its pending calls and its step bodies."""

    def __init__(self, side: PlanSide, run_id: int, source: str = "",
                 filename: str = "<plan>") -> None:
        self.side = side
        self.id = run_id
        self.source = source
        self.filename = filename
        self.log = LogBuffer()  # print output of plan code since the last step call
        self.last_step: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.bodies: dict[int, Callable[[], Any]] = {}
        self.body_tasks: dict[int, asyncio.Task[None]] = {}
        # Bodies not answered yet: their call and what they printed so far.
        self.body_logs: dict[int, tuple[int, LogBuffer]] = {}
        self.cancelling = False
        self.abandoned_bodies = False  # a body was cancelled: it may still be running
        self._ids = itertools.count(1)

    async def _request(self, message: dict[str, Any],
                       fn: Callable[[], Any] | None = None) -> dict[str, Any]:
        if self.cancelling:
            raise asyncio.CancelledError("the run was abandoned by the host")
        call = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[call] = future
        if fn is not None:
            self.bodies[call] = fn
        try:
            self.side.send({**message, "run": self.id, "call": call})
            return await future
        finally:
            self.pending.pop(call, None)
            self.bodies.pop(call, None)

    async def step_call(self, op: str, args: dict[str, Any],
                        fn: Callable[[], Any] | None = None) -> Any:
        if _BODY_RUN.get() is not None:
            raise RuntimeError(f"step.{op}() cannot be called inside a step body")
        message: dict[str, Any] = {"t": "step", "op": op, "args": args}
        if isinstance(args.get("when"), datetime):
            message["args"] = {**args, "when": args["when"].isoformat()}
            message["dt"] = ["when"]
        logs = self.log.take()
        if logs:  # printed before this call: journaled with it (once, not on replays)
            message["logs"] = logs
        step_name = args.get("name") or op
        reply = await self._request(message, fn)
        try:
            value = _reply_value(reply)
        except Exception as exc:
            exc._af_step = step_name  # type: ignore[attr-defined]  # plans cannot read _x
            raise
        self.last_step = step_name
        return value

    async def capability_call(self, name: str, method: str, args: list[Any],
                              kwargs: dict[str, Any], *, body: int | None) -> Any:
        # Checked again when it runs: a call kept and awaited elsewhere is unrecorded.
        if (_BODY_RUN.get() is not self or _BODY_ID.get() != body
                or body not in self.body_tasks):
            raise RuntimeError(f"env.{name}.{method}() must be awaited in the step body that "
                               f"called it, while that body runs")
        try:
            reply = await self._request({"t": "cap", "name": name, "method": method,
                                         "args": args, "kwargs": kwargs, "body": body})
        except (TypeError, ValueError) as exc:  # arguments not JSON, or over the size cap
            error = TypeError(f"env.{name}.{method}(): its arguments cannot be sent ({exc}); "
                              f"pass JSON values: dicts, lists, str, int, float, bool, None")
            error._af_final = True  # type: ignore[attr-defined]  # the same on every try
            raise error from None
        return _reply_value(reply)


def _logs(log: LogBuffer) -> dict[str, Any]:
    lines = log.take()
    return {"logs": lines} if lines else {}


def _returned(exc: Exception) -> Exception:
    """Mark ``exc`` as an error in the value ``run`` returned (it has no plan line)."""
    exc._af_returned = True  # type: ignore[attr-defined]  # plans cannot read _x
    return exc


def _reply_value(reply: dict[str, Any]) -> Any:
    if reply["t"].endswith("_err"):
        raise rebuild_error(reply.get("error"))
    return unpack_value(reply)


class PlanSide:
    """Runs plans for one agent and answers the host's messages.

    Args:
        send: encodes and sends one message to the host; raises `MessageTooLargeError`,
            `TypeError` or `ValueError` when the message cannot be sent.
        on_fatal: called when plan code hit `MemoryError` (after a ``fatal`` message
            to the host); a worker then exits, since its heap may be left unusable.
        cancel_grace: with ``on_fatal``, seconds a cancelled run or step body may take
            to end; plan code still running after that ignored its cancellation (a
            ``finally`` that loops), and the worker ends itself the same way.
    """

    def __init__(self, send: Send, *, on_fatal: Callable[[], None] | None = None,
                 cancel_grace: float | None = None) -> None:
        self.send = send
        self._on_fatal = on_fatal
        self._cancel_grace = cancel_grace
        self.runs: dict[int, _Run] = {}

    def handle(self, message: dict[str, Any]) -> None:
        """Dispatch one message from the host. Raises `ProtocolError`."""
        kind = message.get("t")
        if kind == "run":
            self._start_run(message)
            return
        run = self.runs.get(message.get("run"))  # type: ignore[arg-type]
        if run is None:
            return  # a late message for a run that already ended
        if kind in ("step_ok", "step_err", "cap_ok", "cap_err"):
            future = run.pending.get(message.get("call"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "body":
            self._start_body(run, message)
        elif kind == "body_cancel":
            body = message.get("body")
            task = run.body_tasks.pop(body, None)  # type: ignore[arg-type]
            if task is not None and not task.done():
                run.abandoned_bodies = True
                # Answer at once with what it printed so far: a body that does not
                # stop (its `finally` loops) must not hold the host's attempt, and
                # with it the run, until the worker is killed for it.
                self._answer_cancelled(run, body)  # type: ignore[arg-type]
                self._cancel(task)
        elif kind == "cancel":
            run.cancelling = True
            for task in run.body_tasks.values():
                self._cancel(task)
            if run.task is not None:
                self._cancel(run.task)
        else:
            raise ProtocolError(f"unknown message type {kind!r}")

    # -- runs ----------------------------------------------------------------------------

    def _start_run(self, message: dict[str, Any]) -> None:
        run_id, source = message.get("run"), message.get("source")
        filename, event = message.get("filename", "<plan>"), message.get("event")
        caps = message.get("caps", [])
        if (not isinstance(run_id, int) or run_id in self.runs or not isinstance(source, str)
                or not isinstance(filename, str) or not isinstance(event, dict)
                or not isinstance(caps, list) or not all(isinstance(c, str) for c in caps)):
            raise ProtocolError("malformed run message")
        run = _Run(self, run_id, source, filename)
        self.runs[run_id] = run
        run.task = asyncio.get_running_loop().create_task(
            self._drive(run, source, filename, event, caps))

    async def _drive(self, run: _Run, source: str, filename: str, event: dict[str, Any],
                     caps: list[str]) -> None:
        LOG_SINK.set(run.log.write)  # this task's context: plan code outside step bodies
        try:
            plan: CompiledPlan = compile_plan(source, filename=filename)
            namespace = plan_globals(PlanEnv(run, caps))
            exec(plan.code, namespace)
            value = await namespace["run"](PlanEvent(event), PlanStep(run))
            if not (run.body_tasks or run.abandoned_bodies):  # free what the plan kept
                namespace.clear()  # now: a crash freeing it must fail this very run
            self._finish(run, {"t": "done", **pack_value(value), **_logs(run.log)})
        except asyncio.CancelledError:
            if run.cancelling:
                self._send_quietly({"t": "cancelled", "run": run.id})
            else:
                self._fail(run, RuntimeError("the plan was cancelled"))
        except PlanValidationError as exc:
            self._fail(run, exc)
        except BaseException as exc:  # plan code: nothing may escape the worker loop
            if isinstance(exc, MemoryError):
                self._fatal(f"{type(exc).__name__} in plan code")
            self._fail(run, exc)
        finally:
            self._end(run)

    def _finish(self, run: _Run, message: dict[str, Any]) -> None:
        try:
            try:
                self.send({**message, "run": run.id})
            except MessageTooLargeError:
                if "logs" not in message:
                    raise
                message.pop("logs")  # they tipped it over the cap: the value matters more
                self.send({**message, "run": run.id})
        except MessageTooLargeError as exc:
            self._fail(run, _returned(TypeError(f"the value `run` returned is too large to "
                                                f"send ({exc})")))
        except (TypeError, ValueError) as exc:  # not JSON
            self._fail(run, _returned(TypeError(
                f"the value `run` returned is not JSON ({exc}); return dicts, lists, str, "
                f"int, float, bool or None")))

    def _fail(self, run: _Run, exc: BaseException) -> None:
        self._send_error({"t": "fail", "run": run.id, **_logs(run.log)}, exc, run)

    def _send_error(self, message: dict[str, Any], exc: BaseException,
                    run: _Run | None = None) -> None:
        """Send ``message`` with ``exc`` as its error, or with a bare error if that
        cannot be sent: the host must hear how every run and body ended, since a worker
        that answers pings is never killed by the watchdog.

        With ``run``, the error says where in the plan it happened (plan frames only)
        and, for the run's own failure, which step raised it or came last before it."""
        payload = error_payload(exc)
        if isinstance(exc, StepError) and "error_name" in payload:
            payload["name"] = payload["error_name"]  # checked there: a plan may pass any
        payload["message"] = describe_error(payload["name"], payload["message"])
        if getattr(exc, "_af_final", False) is True:
            payload["final"] = True  # retrying cannot help: the host fails the step now
        if run is not None:
            with contextlib.suppress(Exception):  # a location is a help, never a need
                where = locate(exc, run.filename, run.source)
                inner = read_where(getattr(exc, "_af_where", None))
                if inner is not None and message["t"] == "fail":
                    # a step's error: the run's frames down to the await, then the body's
                    outer = where["traceback"] if where is not None else []
                    frames = [*outer, *inner["traceback"]][-MAX_TRACE_FRAMES:]
                    where = {**frames[-1], "traceback": frames}
                if where is not None:
                    payload["where"] = where
                if message["t"] == "fail":
                    step = getattr(exc, "_af_step", None)
                    if getattr(exc, "_af_returned", False) is True:
                        payload["returned"] = True  # no plan line: what `run` returned
                    if isinstance(step, str):
                        payload["step"] = step
                    elif run.last_step is not None:
                        payload["after_step"] = run.last_step
        try:
            self.send({**message, "error": payload})
        except Exception:
            self._send_quietly({**message, "error": {
                "name": "RuntimeError",
                "message": f"the plan's {type(exc).__name__} cannot be sent to the host"}})

    def _send_quietly(self, message: dict[str, Any]) -> None:
        # If even this cannot be sent, the host's watchdog or EOF takes over.
        with contextlib.suppress(Exception):
            self.send(message)

    def _end(self, run: _Run) -> None:
        self.runs.pop(run.id, None)
        for future in run.pending.values():
            future.cancel()
        for task in list(run.body_tasks.values()):
            self._cancel(task)

    def _cancel(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        if self._on_fatal is not None and self._cancel_grace is not None:
            asyncio.get_running_loop().call_later(self._cancel_grace, self._check_ended, task)

    def _check_ended(self, task: asyncio.Task[None]) -> None:
        if not task.done():
            self._fatal("plan code ignored its cancellation and kept running")

    # -- step bodies ---------------------------------------------------------------------

    def _start_body(self, run: _Run, message: dict[str, Any]) -> None:
        call, body = message.get("call"), message.get("body")
        if not isinstance(call, int) or not isinstance(body, int) or body in run.body_tasks:
            raise ProtocolError("malformed body message")
        fn = run.bodies.get(call)
        log = LogBuffer()
        context = contextvars.copy_context()
        context.run(_BODY_RUN.set, run)
        context.run(_BODY_ID.set, body)
        context.run(LOG_SINK.set, log.write)
        task = asyncio.get_running_loop().create_task(
            self._run_body(run, call, body, fn, log), context=context)
        task.add_done_callback(functools.partial(self._body_ended, run, body))
        run.body_tasks[body] = task
        run.body_logs[body] = (call, log)

    def _answer_cancelled(self, run: _Run, body: int) -> None:
        """Say (once) that ``body`` was cancelled, with what it printed until now."""
        answer = run.body_logs.pop(body, None)
        if answer is not None:
            call, log = answer
            self._send_quietly({"t": "body_cancelled", "run": run.id, "call": call,
                                "body": body, **_logs(log)})

    def _body_ended(self, run: _Run, body: int, task: asyncio.Task[None]) -> None:
        if task.cancelled():  # before it started, so it could not say so itself
            self._answer_cancelled(run, body)
        run.body_logs.pop(body, None)

    async def _run_body(self, run: _Run, call: int, body: int,
                        fn: Callable[[], Any] | None, log: LogBuffer) -> None:
        reply: dict[str, Any] = {"run": run.id, "call": call, "body": body}
        logs: dict[str, Any] = {}
        try:
            if fn is None:
                raise RuntimeError(f"no step body is pending for call {call}")
            value = fn()
            if inspect.isawaitable(value):
                value = await value
            logs = _logs(log)
            try:
                try:
                    self.send({**reply, "t": "body_ok", **pack_value(value), **logs})
                except MessageTooLargeError:
                    if not logs:
                        raise
                    # the logs tipped it over the cap: the result matters more
                    self.send({**reply, "t": "body_ok", **pack_value(value)})
            except MessageTooLargeError as exc:
                unsendable = TypeError(f"the step result is too large to send ({exc}); "
                                       f"return less, or keep big data out of steps")
                unsendable._af_final = True  # type: ignore[attr-defined]  # same each try
                raise unsendable from None
            except (TypeError, ValueError) as exc:
                unsendable = TypeError(f"the step result is not JSON ({exc}); return "
                                       f"dicts, lists, str, int, float, bool or None")
                unsendable._af_final = True  # type: ignore[attr-defined]  # same each try
                raise unsendable from None
            except RecursionError:
                unsendable = TypeError("the step result is nested too deeply to send as "
                                       "JSON; flatten it")
                unsendable._af_final = True  # type: ignore[attr-defined]  # same each try
                raise unsendable from None
        except asyncio.CancelledError:
            # The host gave up on this attempt (a timeout) or the run: what the body
            # printed until now stays with its attempt (unless already answered).
            self._answer_cancelled(run, body)
            return
        except BaseException as exc:  # plan code
            if isinstance(exc, MemoryError):
                self._fatal(f"{type(exc).__name__} in plan code")
            self._send_error({**reply, "t": "body_err", **(logs or _logs(log))}, exc, run)
        finally:
            run.body_tasks.pop(body, None)

    def _fatal(self, reason: str) -> None:
        # Said before the error itself, so the host retires this worker before it
        # hands it another run.
        self._send_quietly({"t": "fatal", "reason": f"{reason}; the worker is replaced"})
        if self._on_fatal is not None:
            self._on_fatal()
