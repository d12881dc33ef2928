"""The escape corpus: attack plans across every class of issue 4, each one stopped.

Each attack is expected to be stopped at a named stage: by the validator (a code), or
at run time in a confined worker (an error, or a killed worker). Attacks the validator
stops are also run through layer 2 alone (RestrictedPython and the namespace, with the
validator bypassed), so each of the first two layers is shown to hold on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import pytest
import pytest_asyncio
from RestrictedPython.compile import compile_restricted_exec

from sandbox import (
    Limits,
    PlanRuntimeError,
    SandboxTimeoutError,
    WorkerPool,
    validate,
)
from sandbox._namespace import plan_globals
from sandbox._policy import PlanPolicy
from sandbox._runtime import PlanEnv, PlanEvent, PlanSide, PlanStep, _Run
from tests.sandbox.support import RecordingHost, Suspend, make_event, plan

module_loop = pytest.mark.asyncio(loop_scope="module")


class Attack(NamedTuple):
    name: str
    kind: str
    source: str
    stopped_by: str  # a validator code, or "runtime:<ErrorName>", or "runtime:timeout"


def P(body: str, helpers: str = "") -> str:
    return plan(body, helpers=helpers)


CORPUS: list[Attack] = [
    # imports of any kind
    Attack("import at top level", "import", "import os\n" + P("return os.getcwd()"), "AF301"),
    Attack("import in run", "import", P("import os\nreturn os.environ"), "AF301"),
    Attack("from-import", "import", P("from os import system\nreturn system('id')"),
           "AF301"),
    Attack("import in a helper", "import",
           P("return f()", "def f():\n    import subprocess as sp\n    return sp\n"),
           "AF301"),
    Attack("__import__ call", "import", P("return __import__('os').environ"), "AF403"),
    Attack("importlib", "import", P("return importlib.import_module('os')"), "AF402"),
    Attack("import via builtins dict", "import",
           P("return __builtins__['__import__']('os')"), "AF403"),
    # dunder and frame walking
    Attack("subclasses walk", "dunder",
           P("return ().__class__.__bases__[0].__subclasses__()"), "AF404"),
    Attack("str mro walk", "dunder", P("return ''.__class__.__mro__[1]"), "AF404"),
    Attack("function globals", "dunder", P("return (lambda: 1).__globals__"), "AF404"),
    Attack("helper globals", "dunder", P("return helper.__globals__['env']",
                                         "def helper():\n    return 1\n"), "AF404"),
    Attack("code object", "dunder", P("return run.__code__"), "AF404"),
    Attack("stub internals", "dunder", P("return step._run.side"), "AF404"),
    Attack("event dict", "dunder", P("return event.__dict__"), "AF404"),
    Attack("coroutine frame", "frame",
           P("c = helper()\nreturn c.cr_frame.f_back", "async def helper():\n    return 1\n"),
           "AF405"),
    Attack("generator frame", "frame",
           P("g = (x for x in [1])\nreturn g.gi_frame.f_globals"), "AF405"),
    Attack("generator code", "frame", P("g = (x for x in [1])\nreturn g.gi_code"), "AF405"),
    Attack("async generator frame", "frame", P("return event.ag_frame"), "AF405"),
    Attack("awaited coroutine", "frame", P("return event.cr_await"), "AF405"),
    Attack("traceback frame walk", "frame",
           P("try:\n    1 / 0\nexcept ZeroDivisionError as err:\n"
             "    return err.__traceback__.tb_frame.f_back.f_builtins"), "AF404"),
    Attack("tb_frame without dunder", "frame", P("return event.tb_frame.f_back"), "AF405"),
    Attack("f_builtins", "frame", P("return event.f_builtins"), "AF405"),
    Attack("AttributeError.obj (CVE-2024-47532)", "dunder",
           P("try:\n    event.missing\nexcept AttributeError as err:\n    return err.obj"),
           "runtime:AttributeError"),
    Attack("coroutine send leaks the awaited future", "frame",
           P("c = helper()\nreturn c.send(None)",
             "async def helper():\n    return await gather()\n"), "runtime:AttributeError"),
    Attack("type attribute walk without underscores", "dunder",
           P("return dict.mro()"), "runtime:AttributeError"),
    Attack("function attributes", "dunder",
           P("return json_dumps.func_globals"), "runtime:AttributeError"),
    Attack("dict view mapping reaches the viewed dict", "dunder",
           P("return {}.keys().mapping"), "runtime:AttributeError"),
    Attack("exception with_traceback", "frame",
           P("try:\n    1 / 0\nexcept ZeroDivisionError as err:\n    return err.with_traceback"),
           "runtime:AttributeError"),
    Attack("datetime tzinfo object", "dunder", P("return event.timestamp.tzinfo"),
           "runtime:AttributeError"),
    Attack("unawaited step coroutine made in a helper", "frame",
           P("c = f(step)\nreturn c.send(None)", "def f(s):\n    return s.now()\n"),
           "runtime:AttributeError"),
    # format-string attribute access
    Attack("str.format traversal", "format",
           P("return '{0.__class__.__mro__}'.format(event)"), "AF406"),
    Attack("format_map traversal", "format",
           P("return '{e.__class__}'.format_map({'e': event})"), "AF406"),
    Attack("unbound str.format", "format",
           P("return str.format('{0.__class__}', event)"), "AF406"),
    Attack("string.Formatter", "format",
           P("return string.Formatter().format('{0.__class__}', event)"), "AF402"),
    Attack("format builtin", "format", P("return format(event, '')"), "AF402"),
    # getattr / vars / dir / type tricks
    Attack("getattr dunder", "introspection", P("return getattr(event, '__class__')"),
           "AF402"),
    Attack("vars", "introspection", P("return vars(step)"), "AF402"),
    Attack("dir", "introspection", P("return dir(env)"), "AF402"),
    Attack("type() class factory", "introspection", P("return type('X', (), {})"),
           "AF402"),
    Attack("object subclasses", "introspection", P("return object.__subclasses__()"),
           "AF402"),
    Attack("setattr on the step stub", "introspection",
           P("setattr(step, 'do', None)"), "AF402"),
    Attack("globals()", "introspection", P("return globals()"), "AF402"),
    Attack("locals()", "introspection", P("return locals()"), "AF402"),
    Attack("super()", "introspection", P("return super()"), "AF402"),
    # builtins tampering
    Attack("overwrite a step method", "tampering", P("step.do = None\nreturn 1"), "AF204"),
    Attack("write guard on the env stub", "tampering",
           P("env.kv = None\nreturn 1"), "runtime:TypeError"),
    Attack("write guard on the event", "tampering",
           P("event.payload = 'forged'\nreturn 1"), "runtime:TypeError"),
    Attack("write guard on a shared exception class", "tampering",
           P("NonRetryableError.message = 'x'\nreturn 1"), "runtime:TypeError"),
    Attack("write guard on a helper function", "tampering",
           P("gather.patched = True\nreturn 1"), "runtime:TypeError"),
    Attack("delete a stub attribute", "tampering",
           P("del env.kv\nreturn 1"), "runtime:TypeError"),
    Attack("rebind the builtins", "tampering", P("__builtins__ = {}\nreturn 1"), "AF403"),
    Attack("shadow a guard with a walrus", "tampering",
           P("(_getattr_ := (lambda o, n: o))\nreturn 1"), "AF403"),
    Attack("shadow the f-string format helper", "tampering",
           P("_format_ = lambda v, s: v\nreturn f'{1:>3}'"), "AF403"),
    Attack("call the f-string format helper by name", "tampering",
           P("return _format_(event, '')"), "AF403"),
    Attack("shadow a guard with a lambda default", "tampering",
           P("f = lambda _write_=None: 1\nreturn f()"), "AF403"),
    Attack("shadow a guard positionally (CVE-2026-55830)", "tampering",
           P("return f(1)", "def f(_getiter_, /):\n    return 1\n"), "AF403"),
    Attack("global guard rebinding", "tampering",
           P("global _write_\n_write_ = lambda ob: ob\nreturn 1"), "AF303"),
    # reading files, environment or host memory
    Attack("open a file", "files", P("return open('/etc/passwd').read()"), "AF402"),
    Attack("environment", "files", P("return os.environ"), "AF402"),
    Attack("sys.modules", "files", P("return sys.modules"), "AF402"),
    Attack("memoryview", "files", P("return memoryview(b'x')"), "AF402"),
    Attack("ctypes", "files", P("return ctypes.string_at(0, 10)"), "AF402"),
    Attack("pathlib", "files", P("return pathlib.Path('/etc/passwd').read_text()"),
           "AF402"),
    Attack("ungranted capability", "files",
           P("return await step.do('x', lambda: env.fs.read('/etc/passwd'))"),
           "runtime:AttributeError"),
    # sockets and subprocesses
    Attack("socket", "network", P("return socket.create_connection(('1.1.1.1', 80))"),
           "AF402"),
    Attack("subprocess", "process", P("return subprocess.run(['id'])"), "AF402"),
    Attack("os.system", "process", P("return os.system('id')"), "AF402"),
    Attack("asyncio subprocess", "process",
           P("return await asyncio.create_subprocess_exec('id')"), "AF402"),
    # signal and exit tricks
    Attack("raise SystemExit", "exit", P("raise SystemExit(0)"), "AF402"),
    Attack("raise KeyboardInterrupt", "exit", P("raise KeyboardInterrupt()"), "AF402"),
    Attack("exit()", "exit", P("exit(0)"), "AF402"),
    Attack("signal handler", "exit", P("signal.signal(2, None)"), "AF402"),
    Attack("swallow the suspension", "exit",
           P("try:\n    await step.sleep('s', 1)\nexcept BaseException:\n    return 1"),
           "AF502"),
    Attack("bare except swallows the suspension", "exit",
           P("try:\n    await step.sleep('s', 1)\nexcept:\n    return 1"), "AF501"),
    Attack("catch GeneratorExit", "exit",
           P("try:\n    await step.sleep('s', 1)\nexcept GeneratorExit:\n    return 1"),
           "AF502"),
    Attack("except* type confusion (CVE-2025-22153)", "exit",
           P("try:\n    pass\nexcept* Exception:\n    pass"), "AF308"),
    # decoding and exec / eval / compile
    Attack("eval", "exec", P("return eval('1 + 1')"), "AF402"),
    Attack("exec", "exec", P("exec('import os')"), "AF402"),
    Attack("compile", "exec", P("return compile('1', 'x', 'eval')"), "AF402"),
    Attack("look-alike eval", "exec", P("return ｅｖａｌ('1')"), "AF402"),
    Attack("decode then exec", "exec",
           P("src = json_loads('\"aW1wb3J0IG9z\"')\nreturn exec(src)"), "AF402"),
    Attack("codecs rot13", "exec", P("return codecs.decode('vzcbeg bf', 'rot13')"),
           "AF402"),
    Attack("generator function", "exec", P("return 1", "def g():\n    yield 1\n"), "AF304"),
    Attack("class definition", "exec", P("return 1", "class A:\n    pass\n"), "AF302"),
    # resource exhaustion
    Attack("infinite loop", "resources", P("while True:\n    pass"), "runtime:timeout"),
    Attack("huge integer", "resources", P("return 9 ** 9 ** 9"), "runtime:timeout"),
    Attack("memory bomb", "resources", P("return 'a' * (10 ** 10)"),
           "runtime:MemoryError"),
    Attack("deep recursion", "resources", P("return f(0)", "def f(n):\n    return f(n + 1)\n"),
           "runtime:RecursionError"),
    Attack("huge output", "resources", P("return 'x' * (8 * 1024 * 1024)"),
           "runtime:TypeError"),
    Attack("huge string of digits", "resources", P("return str(10 ** 100000)"),
           "runtime:ValueError"),
    Attack("fork bomb", "resources", P("while True:\n    os.fork()"), "AF402"),
    Attack("fork bomb in a step body", "resources",
           P("return await step.do('x', lambda: os.fork())"), "AF402"),
]


def test_the_corpus_is_large_and_covers_every_class() -> None:
    assert len(CORPUS) >= 60
    assert len({a.name for a in CORPUS}) == len(CORPUS)
    assert {a.kind for a in CORPUS} >= {
        "import", "dunder", "frame", "format", "introspection", "tampering", "files",
        "network", "process", "exit", "exec", "resources"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[WorkerPool]:
    # Generous: an attack that should end in MemoryError must not hit the watchdog
    # first on a loaded machine (building 256 MiB takes a while under two CPU hogs).
    limits = Limits(call_timeout=60.0, memory_bytes=256 * 1024 * 1024)
    async with WorkerPool(limits=limits) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watchdog_pool() -> AsyncIterator[WorkerPool]:
    # For the attacks the watchdog stops: a short deadline, so they end soon.
    limits = Limits(call_timeout=1.0, memory_bytes=256 * 1024 * 1024)
    async with WorkerPool(limits=limits) as started:
        yield started


@module_loop
@pytest.mark.parametrize("attack", CORPUS, ids=[a.name for a in CORPUS])
async def test_each_attack_is_stopped(pool: WorkerPool, watchdog_pool: WorkerPool,
                                      attack: Attack) -> None:
    report = validate(attack.source)
    if not attack.stopped_by.startswith("runtime:"):
        assert attack.stopped_by in [d.code for d in report.diagnostics], report
        return
    assert report.ok, report.diagnostics  # it gets past layer 1 ...
    host = RecordingHost()
    expected = attack.stopped_by.removeprefix("runtime:")
    agent = f"corpus-{attack.kind}"
    if expected == "timeout":
        with pytest.raises(SandboxTimeoutError):
            await watchdog_pool.run_plan(agent, attack.source, make_event(), host,
                                         capabilities=["kv"])
    else:
        with pytest.raises(PlanRuntimeError) as caught:
            await pool.run_plan(agent, attack.source, make_event(), host,
                                capabilities=["kv"])
        assert caught.value.error_name == expected, caught.value
    assert host.capability_calls == []


class _NoHost:
    def send(self, message: dict[str, Any]) -> None:
        raise RuntimeError("layer-2 harness: no host")


def _layer_two_alone(source: str) -> str:
    """Compile and run with RestrictedPython and the namespace only: how is it stopped?"""
    result = compile_restricted_exec(source, policy=PlanPolicy)
    if result.code is None:
        return "compile"
    side = PlanSide(_NoHost().send)
    run = _Run(side, 1)
    namespace = plan_globals(PlanEnv(run, ["kv"]))
    try:
        exec(result.code, namespace)
        asyncio.run(asyncio.wait_for(
            namespace["run"](PlanEvent(make_event()), PlanStep(run)), 5))
    except Exception as exc:
        return f"runtime {type(exc).__name__}"
    return "NOT STOPPED"


# Rules about plan semantics rather than escapes: layer 2 allows them. What they guard
# (a plan swallowing its suspension) the driver enforces anyway: a suspended run is
# cancelled in the worker and the host gets its signal back whatever the plan catches
# (test_a_suspended_plan_cannot_keep_running_in_finally).
_LAYER_ONE_ONLY = {"swallow the suspension", "bare except swallows the suspension",
                   "catch GeneratorExit", "generator function"}
_STATIC = [a for a in CORPUS if not a.stopped_by.startswith("runtime:")
           and a.kind != "resources" and a.name not in _LAYER_ONE_ONLY]


@pytest.mark.parametrize("attack", _STATIC, ids=[a.name for a in _STATIC])
def test_layer_two_alone_also_stops_what_the_validator_stops(attack: Attack) -> None:
    assert _layer_two_alone(attack.source) != "NOT STOPPED"


@module_loop
async def test_a_suspended_plan_cannot_keep_running_in_finally(pool: WorkerPool) -> None:
    # The plan tries to go on after the host suspends it: the worker cancels it, and a
    # finally block that spins is ended by the watchdog. The suspension still reaches
    # the caller unchanged.
    host = RecordingHost(suspend={"wait"})
    source = P("try:\n    await step.sleep('wait', 1)\nfinally:\n    while True:\n"
               "        pass")
    with pytest.raises(Suspend):
        await pool.run_plan("corpus-finally", source, make_event(), host, capabilities=[])


@module_loop
async def test_shadowed_builtins_do_not_leak_into_the_next_run(pool: WorkerPool) -> None:
    await pool.run_plan("corpus-shadow", "len = 7\n" + P("return len"), make_event(),
                        RecordingHost(), capabilities=[])
    assert await pool.run_plan("corpus-shadow", P("return len('abc')"), make_event(),
                               RecordingHost(), capabilities=[]) == 3
