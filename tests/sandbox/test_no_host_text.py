"""Plan code cannot read the host's module paths or heap addresses through the text of
the objects it can reach, in a confined worker as inline; and step names that would
hide, restyle or reorder what a person reads are refused before anything runs."""

from __future__ import annotations

import re
from typing import Any, Literal

import pytest

from sandbox import Limits, WorkerPool, validate
from tests.sandbox.support import RecordingHost, make_event

PLAN = '''
async def run(event, step):
    def helper():
        return 1
    return [repr(step), repr(gather), repr(str.maketrans), repr(env), repr(env.kv),
            repr(env.kv.get), repr("abc".upper), repr(dict.fromkeys), repr(event),
            repr(StepError), repr(json_dumps), repr(json_loads), repr([env, gather]),
            repr(repr), repr(helper), f"{gather}", f"{gather!r}", f"{str.maketrans}",
            f"{env.kv!s}", f"{[1].append!a}", str(str.maketrans), str(env.kv.get),
            str("x".join), str(helper), str(print), str(StepError), str([helper]),
            "%s" % helper, "%r and %s" % (helper, gather), "%(a)s" % {"a": StepError},
            f"{1.5:.2f}", f"{'x'!r:>5}"]
'''

# Module paths of the host (sandbox._runtime.PlanStep, builtins, asyncio ...), and
# heap addresses in any form.
_LEAK = re.compile(r"0x[0-9a-fA-F]{4,}|sandbox|agentflow|_runtime|_namespace|builtins|"
                   r"asyncio| of type object| object at ")


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_no_host_object_leaks_a_module_path_or_an_address(
        isolation: Literal["inline", "process"]) -> None:
    async with WorkerPool(isolation=isolation,
                          limits=Limits(memory_bytes=256 * 1024 * 1024)) as pool:
        out: list[Any] = await pool.run_plan("reprs", PLAN, make_event(), RecordingHost(),
                                             capabilities=["kv"])
    leaks = [text for text in out if _LEAK.search(text)]
    assert leaks == []
    assert out[:3] == ["<step>", "<built-in function gather>",
                       "<built-in method str.maketrans>"]
    assert out[-2:] == ["1.50", "  'x'"]  # formatting of plain data is unchanged


class LoggingHost(RecordingHost):
    def __init__(self) -> None:
        super().__init__()
        self.logs: list[str] = []

    def log(self, lines: list[str]) -> None:
        self.logs.extend(lines)


STR_STILL_STR = '''
async def run(event, step):
    text = "a %s"
    text %= 3
    print("helper is", run)
    return [isinstance("a", str), isinstance(1, str), issubclass(bool, str), str(5),
            str(), str(2.5), str(None), "%d items" % 3, "%5.1f|%s" % (2.25, "x"), text,
            "abc".translate(str.maketrans("a", "b")), sorted(["b", "a"], key=str),
            list(map(str, [1, 2])), repr(str)]
'''


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_str_and_percent_formatting_still_work_on_plain_data(
        isolation: Literal["inline", "process"]) -> None:
    # str is scrubbed for host objects only: for data it is the builtin, isinstance and
    # str.maketrans included; print's text is scrubbed the same way.
    host = LoggingHost()
    async with WorkerPool(isolation=isolation,
                          limits=Limits(memory_bytes=256 * 1024 * 1024)) as pool:
        out = await pool.run_plan("str", STR_STILL_STR, make_event(), host, capabilities=[])
    assert out == [True, False, False, "5", "", "2.5", "None", "3 items", "  2.2|x", "a 3",
                   "bbc", ["a", "b"], ["1", "2"], "<class 'str'>"]
    printed = "".join(host.logs)
    assert "helper is <function run>" in printed and not _LEAK.search(printed)


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "\x1b[31mred", "tab\there",
                                  "rtl\u202eevil", "zero\u200bwidth", "bom\ufeff",
                                  "isolate\u2066x", "c1\x85"])
def test_a_literal_step_name_with_an_unprintable_character_is_refused(name: str) -> None:
    source = f"async def run(event, step):\n    await step.do({name!r}, lambda: 1)\n"
    report = validate(source)
    assert [d.code for d in report.diagnostics] == ["AF206"]


def test_an_f_string_name_is_checked_in_its_literal_parts() -> None:
    source = ('async def run(event, step):\n'
              '    for i in range(2):\n'
              '        await step.sleep(f"wait\\u202e{i}", 1)\n')
    assert [d.code for d in validate(source).diagnostics] == ["AF206"]
    assert validate(source.replace("\\u202e", " ")).ok
