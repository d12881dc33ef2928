"""sandbox: run agent-written plans without trusting them.

Threat model
------------
A plan is untrusted code: written by a model, possibly steered by prompt injection. It
must not read host memory, files, the environment or secrets; must not open sockets,
spawn processes, or signal, trace or exhaust the host; and must not reach another
agent's worker or data. Its only ways out are the messages it sends: ``step.*`` calls
and ``env.<capability>`` calls, which the host answers and is responsible for
checking (the host treats every value and name it receives as untrusted input).

Layers (no single one is trusted alone)
---------------------------------------
1. Static validation (`validate`): size and nesting limits, module shape, awaited and
   literally named ``step.*`` calls, no import/class/global/nonlocal/yield/async
   for/async with/match/with, no bare ``except`` nor catching ``BaseException`` and
   friends, no nondeterministic or dangerous names, no underscore names or attributes;
   step-method arguments, lambdas that would read a loop variable too late, and, given
   the agent's grants, ``env`` use. Every finding has a stable code
   (`DIAGNOSTIC_CODES`) and a hint naming the plan-side fix.
2. RestrictedPython 9.0 with a policy that adds ``async def`` and ``await`` only
   (`sandbox._policy`), compiling the very AST the validator checked; at run time an
   attribute allowlist stricter than ``safer_getattr``, guarded items, iteration and
   writes, safe builtins only, and no stdlib module in the namespace
   (`sandbox._namespace`). Plan code runs wrapped so that no `BaseException` escapes.
3. A confined worker process per agent, forked from a zygote (`WorkerPool`) that
   runs with an empty environment (the host's secrets never reach it), in this order:
   inherited descriptors closed, rlimits (CPU, address space, files, processes, file
   size, core), a private network namespace, an unprivileged uid/gid per agent,
   no-new-privs, Landlock (read-only interpreter files, no TCP, scoped signals) and a
   seccomp filter (no socket but an AF_UNIX socketpair, no exec, fork-like clone,
   ptrace or mount). `doctor()` reports which layers this machine supports; a worker
   starts without a layer the machine lacks.
4. In the host: a wall-clock deadline per call that ends in SIGKILL
   (`SandboxTimeoutError`), size-capped frames both ways, and JSON only across the
   boundary: the host never unpickles or evaluates anything a worker sends, checks
   every field, refuses capability calls that were not granted and caps the calls in
   flight (a worker that breaks the protocol is killed) and the bytes in flight per run
   (`Limits.max_bytes_in_flight`: past it a call or result is refused, not buffered).
   A body or run the host cancels (a step timeout, terminate, restart) must let the
   worker's loop turn within `Limits.cancel_grace`, or the worker is killed; its other
   runs end with ``WorkerCrashedError.rerun`` set, for the caller to run them again.
   Workers are slots (`WorkerPool(max_workers=...)`): a busy one is never evicted, and
   runs past the limit wait in arrival order.

What it is NOT
--------------
- **RestrictedPython is not a sandbox**, as its own README says, and neither is the
  validator: layers 1-2 make escapes hard and errors clear; the confined worker
  process is the boundary.
- **Inline isolation is not a security boundary.** ``WorkerPool(isolation="inline")``
  runs plans in the host process with layers 1-2 only, for trusted code, tests and
  notebooks. It has no watchdog: an endless loop hangs the host, a memory bomb
  exhausts it, and data nested too deeply for the C stack can crash its interpreter.
- It does not police what the host's own step and capability implementations do, nor
  what the values a plan returns mean. Granting a capability is granting its power.
- It is Linux-only in its process layers, and its seccomp filter is x86_64-only.
- It does not hide timing: a plan can measure how long the host takes to answer.

What a plan did is reported, never its host: ``print`` output is captured per step
body and per stretch of plan code (`sandbox._located.LogBuffer`, capped), and an error
carries the plan frames of its traceback only (line, function, source text), and
`place_words` says where in the run it happened (in a step, after one, before the
first, in the value ``run`` returned).

Public API: `validate`, `compile_plan`, `WorkerPool`, `PlanHost`, `Limits`, `doctor`,
`place_words` and the result and error types below.
"""

from sandbox._codes import DIAGNOSTIC_CODES, render_codes_markdown
from sandbox._compile import CompiledPlan, compile_plan, validate
from sandbox._doctor import doctor
from sandbox._errors import (
    MessageTooLargeError,
    PlanRuntimeError,
    PlanValidationError,
    RemoteError,
    SandboxError,
    SandboxTimeoutError,
    WorkerCrashedError,
)
from sandbox._host import WorkerPool
from sandbox._hostapi import PlanHost
from sandbox._limits import LayerStatus, Limits
from sandbox._located import place_words
from sandbox._namespace import NonRetryableError, StepError, WorkflowTimeoutError
from sandbox._report import Diagnostic, ValidationReport

__all__ = [
    "DIAGNOSTIC_CODES",
    "CompiledPlan",
    "Diagnostic",
    "LayerStatus",
    "Limits",
    "MessageTooLargeError",
    "NonRetryableError",
    "PlanHost",
    "PlanRuntimeError",
    "PlanValidationError",
    "RemoteError",
    "SandboxError",
    "SandboxTimeoutError",
    "StepError",
    "ValidationReport",
    "WorkerCrashedError",
    "WorkerPool",
    "WorkflowTimeoutError",
    "compile_plan",
    "doctor",
    "place_words",
    "render_codes_markdown",
    "validate",
]
