"""The errors agentflow raises, grouped by who is expected to catch them: the whole tree.

    AgentflowError                      root of everything agentflow raises on purpose
    ├── UsageError                      a mistake by the developer calling the library
    │   ├── InvalidArgumentError        (also a ValueError) a bad id, name, duration, payload...
    │   │   ├── LimitExceededError      an input over a documented limit
    │   │   └── PlanValidationError     a plan's source was rejected; `.report` has the
    │   │                               diagnostics (also the sandbox's own class, below)
    │   ├── NotFoundError               (also a LookupError)
    │   │   ├── InstanceNotFoundError
    │   │   ├── WorkflowNotFoundError
    │   │   ├── PlanNotFoundError       no plan of that name (or version) for this agent
    │   │   └── ScheduleNotFoundError   no schedule of that name (in this scope)
    │   ├── InvalidStateError           e.g. resume() on a complete instance
    │   ├── EngineNotStartedError       an API call before `async with engine`
    │   └── HumanOnlyEventError         an agent sent an event type only a person may send
    ├── WorkflowError                   the failure of a run, seen by plan code or in a status
    │   ├── StepError                   a step failed with an error of no known class
    │   ├── WorkflowTimeoutError        a step attempt or an event wait ran out of time
    │   ├── NonDeterminismError         a replay asked for a different step than the journal holds
    │   └── MissingDispatcherMetadataError  a dynamic run's payload has no metadata envelope
    ├── CapabilityError                 a capability call was refused or failed
    ├── CommitOutcomeUnknownError       PostgreSQL lost the connection while committing a
    │                                   write not safe to repeat: read the state, decide
    ├── StoreUnavailableError           the database could not be used (locked past the
    │                                   store's retries, unreachable): nothing was changed
    └── NonRetryableError               raised by plan code on purpose: do not retry this step

    BaseException
    └── EngineSignal                    internal control flow; plan code must not swallow it
        ├── Suspend                     the run waits (sleep, event, retry) and leaves memory
        └── LeaseLost                   another holder took the instance; stop quietly

`EngineSignal` derives from `BaseException`, as DBOS's `DBOSBaseException` does, so that
an `except Exception:` in a plan cannot swallow a suspension.

The sandbox is a leaf package that never imports agentflow, so it keeps its own error
types (`sandbox.SandboxError` and below). Where one of them reaches an agentflow user it
arrives as an agentflow error: `PlanValidationError` derives from both
`InvalidArgumentError` and `sandbox.PlanValidationError`, so ``except AgentflowError``
and ``except sandbox.PlanValidationError`` both catch a rejected plan. It is defined
with the agent layer and loaded from here on first use, so that importing the engine
never imports the sandbox.
"""

from __future__ import annotations

import builtins
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentflow.plans._invalid import PlanValidationError

__all__ = [
    "ENGINE_ERROR_NAMES",
    "PLAN_ORIGIN",
    "AgentflowError",
    "CapabilityError",
    "CommitOutcomeUnknownError",
    "EngineNotStartedError",
    "EngineSignal",
    "HumanOnlyEventError",
    "InstanceNotFoundError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LeaseLost",
    "LimitExceededError",
    "MissingDispatcherMetadataError",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "PlanNotFoundError",
    "PlanValidationError",
    "ScheduleNotFoundError",
    "StepError",
    "StoreUnavailableError",
    "Suspend",
    "UsageError",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "describe_error",
]


class AgentflowError(Exception):
    """Root of every error agentflow raises on purpose."""


class UsageError(AgentflowError):
    """The library was called wrongly; the message says how to call it instead."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument has the wrong form or value."""


class LimitExceededError(InvalidArgumentError):
    """An input is over one of the documented limits (sizes, counts, lengths)."""


class NotFoundError(UsageError, LookupError):
    """Something named by id does not exist (or is not visible to the caller)."""


class InstanceNotFoundError(NotFoundError):
    """No instance with that id exists in this scope."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow is registered under that name."""


class PlanNotFoundError(NotFoundError):
    """No plan of that name (or version) exists for this agent."""


class ScheduleNotFoundError(NotFoundError):
    """No schedule of that name (in this agent's scope)."""


class InvalidStateError(UsageError):
    """The operation does not apply to the instance in its current status."""


class EngineNotStartedError(UsageError):
    """The engine's store is not open: use `async with engine:` or `await engine.start()`."""


class HumanOnlyEventError(UsageError):
    """An agent tried to send an event type that only a person may send."""


class WorkflowError(AgentflowError):
    """The failure of a run, raised inside plan code or recorded in an instance's status."""


class StepError(WorkflowError):
    """A step failed for good with an error whose class agentflow cannot rebuild.

    Attributes:
        error_name: the class name of the original error, e.g. ``"MyClientError"``.
        message: the original error's message.
        step: the name of the step that failed, when known.
        retryable: False when retrying cannot help (a capability's refusal): the step
            then fails at once, as with `NonRetryableError`.
        origin: ``"plan"`` when plan code raised it (see `PLAN_ORIGIN`).
    """

    def __init__(self, message: str, *, error_name: str = "StepError", step: str | None = None,
                 retryable: bool = True, origin: str | None = None):
        super().__init__(message)
        self.error_name = error_name
        self.message = message
        self.step = step
        self.retryable = retryable
        self.origin = origin


class WorkflowTimeoutError(WorkflowError, TimeoutError):
    """A step attempt exceeded its timeout, or an event did not arrive before its deadline."""


class NonDeterminismError(WorkflowError):
    """A replay asked for a different step than the one the journal holds at that position.

    The instance is errored: a plan must make the same `step.*` calls in the same order on
    every replay. Branch on step results and `step.now()`/`step.random()`, never on the
    wall clock or other outside state.
    """


class MissingDispatcherMetadataError(WorkflowError):
    """A run of the dynamic entrypoint found no ``__dispatcher_metadata`` envelope in its
    payload: the instance was created through the plain binding instead of the wrapped
    one (`wrap_workflow_binding`), so there is no way to know whose code to run."""


class CapabilityError(AgentflowError):
    """A capability call was refused or failed: not granted, a host not allowed, a reply
    too large, a method that does not exist. The plan sees it as a step error."""


class CommitOutcomeUnknownError(AgentflowError):
    """The connection was lost while PostgreSQL was committing a write that is not safe
    to repeat: it may or may not have been applied. Read the state and decide."""


class StoreUnavailableError(AgentflowError):
    """The database could not be used: locked by another process past the store's
    retries, or unreachable. The operation was rolled back: nothing was changed.
    Try again later. (On SQLite it is also a ``sqlite3.OperationalError``, on
    PostgreSQL a ``psycopg.OperationalError``, as before.)"""


class NonRetryableError(AgentflowError):
    """Raise this inside a step to fail it at once, without using the remaining retries."""


class EngineSignal(BaseException):
    """Internal control flow of the engine. Plan code must let it pass."""


class Suspend(EngineSignal):
    """The run cannot go on now: it waits for a timer, an event or a retry."""


class LeaseLost(EngineSignal):
    """The instance was taken over (lease expired, terminated, restarted): stop quietly."""


# Errors rebuilt by name when a journaled step error is raised again on replay.
_AGENTFLOW_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (NonRetryableError, WorkflowTimeoutError, NonDeterminismError, LimitExceededError,
                InvalidArgumentError)
}


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


#: The ``origin`` of an error that plan code raised: it is the plan's own, recorded with
#: ``"origin": "plan"`` and never under the name of one of the engine's errors.
PLAN_ORIGIN = "plan"
#: Names only the engine's own diagnoses carry. A plan error claiming one (a plan can
#: raise ``StepError(..., error_name="NonDeterminismError")``) is recorded as a
#: ``StepError`` that says which name it claimed, so an operator never mistakes a
#: plan's error for the engine's. `NonRetryableError` and `StepError` are raised by
#: plans on purpose and keep their names.
ENGINE_ERROR_NAMES: frozenset[str] = frozenset({
    "AgentflowError", "UsageError", "InvalidArgumentError", "LimitExceededError",
    "NotFoundError", "InstanceNotFoundError", "WorkflowNotFoundError", "InvalidStateError",
    "EngineNotStartedError", "WorkflowError", "WorkflowTimeoutError", "NonDeterminismError",
    "MissingDispatcherMetadataError", "EngineSignal", "Suspend", "LeaseLost",
    "HumanOnlyEventError", "CapabilityError", "PlanValidationError", "PlanNotFoundError"})


def error_record(exc: BaseException) -> dict[str, Any]:
    """The JSON form of an error as journaled and shown in a status.

    Always ``{name, message}``. An error plan code raised also has ``"origin":
    "plan"``, and never carries one of `ENGINE_ERROR_NAMES`. An agent plan's error also
    says where it happened (its ``plan_context``, set by the agent layer): ``step`` (the
    step whose error it is; null for an error in plan code outside any step) or
    ``after_step`` (the last step before an error in plan code), ``at`` (the same in
    words: ``"in step 'fetch'"``, ``"after step 'fetch'"``, ``"before the first step"``
    or ``"in the return value of run, after step 'fetch'"``), and ``where`` (``{line,
    function, source, traceback}``, plan frames only; absent for an error in the value
    ``run`` returned, which has no plan line).
    """
    name = exc.error_name if isinstance(exc, StepError) else type(exc).__name__
    try:
        message = exc.message if isinstance(exc, StepError) else str(exc)
    except Exception:  # a __str__ that raises must not stop the error being recorded
        message = f"<{name} whose message cannot be shown>"
    record: dict[str, Any] = {"name": storable_text(str(name)),
                              "message": storable_text(str(message))}
    context = getattr(exc, "plan_context", None)
    if isinstance(context, dict):
        if isinstance(context.get("message"), str):  # as the plan's sandbox wrote it
            record["message"] = storable_text(context["message"])
        for key in ("step", "after_step", "at"):
            if isinstance(context.get(key), str):
                record[key] = storable_text(context[key])
        if "at" in record and "step" not in record:
            record["step"] = None  # said outright: the error is in no step
        if isinstance(context.get("where"), dict):
            record["where"] = context["where"]
    if getattr(exc, "origin", None) == PLAN_ORIGIN:
        record["origin"] = PLAN_ORIGIN
        if record["name"] in ENGINE_ERROR_NAMES:
            record["message"] = (f"{record['message']} (the plan raised this under the "
                                 f"engine's name {record['name']})")
            record["name"] = "StepError"
    return record


def describe_error(record: dict[str, Any] | None) -> str:
    """An error record as one line that says whose error it is: ``plan error ValueError:
    ...`` for the plan's own, ``NonDeterminismError: ...`` for the engine's."""
    if not record:
        return ""
    text = f"{record.get('name', 'Error')}: {record.get('message', '')}"
    return f"plan error {text}" if record.get("origin") == PLAN_ORIGIN else text


def storable_text(text: str) -> str:
    """`text` with what UTF-8 cannot hold (lone surrogates) replaced by U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def rebuild_error(record: dict[str, Any], *, step: str | None = None) -> Exception:
    """Turn a journaled ``{name, message}`` back into an exception a plan can catch.

    agentflow's own errors and the builtin exception classes come back as themselves, so
    ``except ValueError`` and ``except WorkflowTimeoutError`` work in plans; any other
    class comes back as a `StepError` that keeps the original name in ``error_name``.
    The first run raises the rebuilt error too, so a plan sees the same thing on every
    replay.
    """
    name = str(record.get("name", "StepError"))
    message = str(record.get("message", ""))
    origin = PLAN_ORIGIN if record.get("origin") == PLAN_ORIGIN else None
    # A plan's error is rebuilt as a builtin, as NonRetryableError, or as a StepError:
    # never as one of the engine's classes, whatever name it carries.
    cls = _AGENTFLOW_ERRORS.get(name) if origin is None else (
        NonRetryableError if name == "NonRetryableError" else None)
    if cls is None:
        candidate = getattr(builtins, name, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception):
            cls = candidate
    if cls is not None:
        try:
            err = cls(message)
        except Exception:
            err = None
        if err is not None:
            err.step = step  # type: ignore[attr-defined]
            if origin is not None:
                err.origin = origin  # type: ignore[attr-defined]
            return _with_context(err, record, step)
    rebuilt = StepError(message, error_name=name, step=step, origin=origin)
    return _with_context(rebuilt, record, step)


def _with_context(err: Exception, record: dict[str, Any], step: str | None) -> Exception:
    # A journaled step error that says where in an agent's plan it was raised keeps
    # that, so the plan error it becomes can show the step body's own line.
    if isinstance(record.get("where"), dict):
        err.plan_context = {"where": record["where"], "step": step}  # type: ignore[attr-defined]
    return err


def __getattr__(name: str) -> object:
    # PlanValidationError derives from the sandbox's class too: load it (and the
    # sandbox) only when someone asks for it.
    if name == "PlanValidationError":
        from agentflow.plans._invalid import PlanValidationError

        return PlanValidationError
    raise AttributeError(f"module 'agentflow.errors' has no attribute {name!r}")
