"""Errors the sandbox raises on the host side, grouped by who catches them.

    SandboxError                        root of every error the sandbox raises on purpose
    ├── PlanValidationError             (also ValueError) the source failed validation;
    │                                   `.report` holds the diagnostics
    ├── MessageTooLargeError            (also ValueError) a value over max_message_bytes
    ├── PlanRuntimeError                the plan raised and did not catch an error;
    │                                   `.error_name`, `.message`
    ├── RemoteError                     a step body raised inside the worker;
    │                                   `.error_name`, `.message`
    └── WorkerCrashedError              the worker died or broke the protocol; it is
        │                               rebuilt on the next run
        └── SandboxTimeoutError         (also TimeoutError) the worker computed longer than
                                        `Limits.call_timeout` and was killed

Exceptions *inside* a plan are different objects: the plan sees sandbox-local classes
named like the engine's (`NonRetryableError`, `WorkflowTimeoutError`, `StepError`); see
`sandbox._namespace`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox._report import ValidationReport

__all__ = [
    "MessageTooLargeError",
    "PlanRuntimeError",
    "PlanValidationError",
    "RemoteError",
    "SandboxError",
    "SandboxTimeoutError",
    "WorkerCrashedError",
]


class SandboxError(Exception):
    """Root of every error the sandbox raises on purpose."""


class PlanValidationError(SandboxError, ValueError):
    """The plan source failed static validation (or restricted compilation).

    Attributes:
        report: the `ValidationReport` with every finding.
    """

    def __init__(self, report: ValidationReport) -> None:
        first = report.diagnostics[0] if report.diagnostics else None
        summary = (f"line {first.line}, col {first.col}: {first.code} {first.message}"
                   if first else "invalid plan")
        more = len(report.diagnostics) - 1
        super().__init__(f"plan is invalid: {summary}"
                         + (f" (and {more} more finding{'s' * (more > 1)})" if more > 0 else ""))
        self.report = report


class MessageTooLargeError(SandboxError, ValueError):
    """A value to send across the sandbox boundary is over `Limits.max_message_bytes`."""


class _NamedRemoteError(SandboxError):
    def __init__(self, error_name: str, message: str, *,
                 where: dict[str, Any] | None = None, final: bool = False,
                 step: str | None = None, after_step: str | None = None,
                 returned: bool = False) -> None:
        super().__init__(f"{error_name}: {message}" if message else error_name)
        self.error_name = error_name
        self.message = message
        self.where = where
        self.final = final
        self.step = step
        self.after_step = after_step
        self.returned = returned


class PlanRuntimeError(_NamedRemoteError):
    """The plan raised an error it did not catch.

    Attributes:
        error_name: the class name of the plan's error, e.g. ``"KeyError"`` or
            ``"NonRetryableError"``.
        message: its message.
        where: where in the plan it was raised, or None: ``{"line", "function",
            "source", "traceback": [...]}`` with plan frames only.
        step: the step whose error this is (the plan did not catch it), or None.
        after_step: else, the last step call that returned before the error, or None.
        returned: True when the error is in the value ``run`` returned (not JSON, too
            large): it has no plan line, and ``after_step`` is the last step before.
    """


class RemoteError(_NamedRemoteError):
    """A step body (the ``fn`` of ``step.do``) raised inside the sandbox.

    ``run_body()`` raises it to the host. A body that raised ``NonRetryableError``
    has ``error_name == "NonRetryableError"``.

    Attributes:
        error_name: the class name of the body's error.
        message: its message.
        where: where in the plan's step body it was raised (plan frames only), or None.
        final: True when retrying cannot help (a capability refused the call, or the
            result is not JSON): the step should fail at once.
        quota: True when the host itself refused the body's result (bytes in flight
            per run, `Limits.max_bytes_in_flight`), not the plan: ``error_name`` is
            then ``"LimitExceededError"``, and ``final`` is true.
    """

    quota: bool = False


class WorkerCrashedError(SandboxError):
    """The agent's worker process died, was killed, or broke the message protocol.

    The next `run_plan` for the agent starts a fresh worker. The message says why the
    worker ended (a limit, a protocol violation, an eviction).

    Attributes:
        rerun: True when the host ended the worker for a reason that is not the run's
            own fault (an eviction, or a step body that did not stop when the host
            cancelled it, for a timeout, a terminate or a restart): the caller should
            run the plan again (a replay) rather than fail it.
    """

    def __init__(self, message: str = "", *, rerun: bool = False) -> None:
        super().__init__(message)
        self.rerun = rerun


class SandboxTimeoutError(WorkerCrashedError, TimeoutError):
    """The worker kept computing past `Limits.call_timeout` and was SIGKILLed."""
