"""The plan namespace: why the attribute allowlist is stricter than `safer_getattr`.

The attacks run through layer 2 alone (RestrictedPython and the namespace, the
validator bypassed). The event-loop leak gets through RestrictedPython's stock
`safer_getattr` (no underscore is needed to walk from a coroutine to the loop); the
sandbox's allowlist stops it and the other leaks.
"""

from __future__ import annotations

import asyncio
import gc
import types
import warnings
from typing import Any

import pytest
from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.Guards import safer_getattr

from sandbox._namespace import guarded_getattr, plan_globals
from sandbox._policy import PlanPolicy
from sandbox._runtime import PlanEnv, PlanEvent, PlanSide, PlanStep, _Run
from tests.sandbox.support import make_event, plan

LEAK_THE_EVENT_LOOP = plan('''
pending = step.now()              # a coroutine, never awaited
future = pending.send(None)       # runs it up to the host call: yields an asyncio Future
return future.get_loop()          # the event loop: subprocess_exec, run_in_executor ...
''')
LEAK_AN_OBJECT_THROUGH_ATTRIBUTE_ERROR = plan('''
try:
    env.kv.missing_attribute_of_a_method.x
except AttributeError as err:
    return err.obj                # CVE-2024-47532: the object the lookup failed on
''')


def run_layer_two(source: str, getattr_guard: Any) -> Any:
    """Run the plan with RestrictedPython and the namespace only; return or raise."""
    result = compile_restricted_exec(source, policy=PlanPolicy)
    assert result.code is not None, result.errors
    side = PlanSide(lambda message: None)
    run = _Run(side, 1)
    namespace = plan_globals(PlanEnv(run, ["kv"]))
    namespace["_getattr_"] = getattr_guard

    async def main() -> Any:
        return await namespace["run"](PlanEvent(make_event()), PlanStep(run))

    exec(result.code, namespace)
    error: BaseException | None = None
    with warnings.catch_warnings():
        # The attack leaves a step coroutine unawaited: collect it here, quietly.
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            value = asyncio.run(main())
        except BaseException as exc:
            error = type(exc)(*exc.args)  # without the traceback that pins the coroutine
            del exc
        gc.collect()
    if error is not None:
        raise error
    return value


def test_safer_getattr_lets_the_event_loop_leak() -> None:
    loop = run_layer_two(LEAK_THE_EVENT_LOOP, safer_getattr)
    assert isinstance(loop, asyncio.AbstractEventLoop)  # escaped: subprocess_exec & co


@pytest.mark.parametrize("source", [LEAK_THE_EVENT_LOOP,
                                    LEAK_AN_OBJECT_THROUGH_ATTRIBUTE_ERROR])
def test_the_allowlist_stops_host_objects_leaking(source: str) -> None:
    with pytest.raises(AttributeError, match=r"available in plans|not granted"):
        run_layer_two(source, guarded_getattr)


def test_no_module_is_reachable_from_the_namespace() -> None:
    namespace = plan_globals(env=None)
    values = list(namespace.values()) + list(namespace["__builtins__"].values())
    assert not [v for v in values if isinstance(v, types.ModuleType)]
    for forbidden in ("__import__", "getattr", "type", "vars", "dir", "open", "eval",
                      "exec", "compile", "globals", "locals", "object", "super", "id",
                      "hash", "print", "input", "memoryview", "bytearray", "__build_class__",
                      "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit"):
        assert forbidden not in namespace["__builtins__"], forbidden


@pytest.mark.parametrize(("obj", "name"), [
    ("x", "format"), ("x", "format_map"), (str, "format"), (ValueError("e"), "obj"),
    (ValueError("e"), "with_traceback"), (len, "self"), ((lambda: 1), "func_globals"),
    (iter([1]), "gi_frame"), ({}.items(), "mapping"), (dict, "mro"), (type, "mro"),
])
def test_attributes_outside_the_allowlist_are_refused(obj: Any, name: str) -> None:
    with pytest.raises(AttributeError):
        guarded_getattr(obj, name)


@pytest.mark.parametrize(("obj", "name"), [
    ("x", "upper"), ([], "append"), ({}, "items"), (1, "bit_length"), (dict, "fromkeys"),
    (ValueError("e"), "args"),
])
def test_data_attributes_stay_usable(obj: Any, name: str) -> None:
    assert guarded_getattr(obj, name) is not None


def test_each_run_gets_its_own_builtins() -> None:
    first, second = plan_globals(env=None), plan_globals(env=None)
    first["__builtins__"]["len"] = None
    assert second["__builtins__"]["len"] is len
