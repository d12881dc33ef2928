"""The validator's authoring checks: a hint that names the plan-side call for every
clock, sleep and interpreter name; step-method arguments; late-bound lambdas; grants."""

from __future__ import annotations

import pytest

from sandbox import validate
from sandbox._hints import FORBIDDEN, NONDETERMINISTIC
from tests.sandbox.support import plan


def findings(body: str, **kwargs: object) -> list[tuple[str, str, str]]:
    return [(d.code, d.message, d.hint)
            for d in validate(plan(body), **kwargs).diagnostics]  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "code", "fix"), [
    ("time.sleep(5)", "AF401", 'await step.sleep("pause", 5)'),
    ("await asyncio.sleep(5)", "AF402", 'await step.sleep("pause", 5)'),
    ("return time.time()", "AF401", "await step.now()"),
    ("return time.monotonic()", "AF401", "await step.now()"),
    ("return datetime.now()", "AF401", "await step.now()"),
    ("return datetime.utcnow()", "AF401", "await step.now()"),
    ("return date.today()", "AF401", "await step.now()"),
    ("return random.random()", "AF401", "await step.random()"),
    ("return random.choice([1, 2])", "AF401", "await step.random()"),
    ("return uuid.uuid4()", "AF401", "await step.uuid()"),
    ("return secrets.token_hex()", "AF401", "await step.uuid()"),
    ("return open('f').read()", "AF402", "event.payload"),
    ("return getattr(event, 'payload')", "AF402", "event.payload"),
    ("return setattr(event, 'a', 1)", "AF402", "d[key] = value"),
    ("return hasattr(event, 'a')", "AF402", "key in d"),
    ("return type(event)", "AF402", "isinstance("),
    ("return eval('1')", "AF402", "json_loads("),
    ("return iter([1])", "AF402", "for"),
    ("return next([1])", "AF402", "items[0]"),
    ("return input()", "AF402", "event.payload"),
    ("return json.dumps(1)", "AF402", "json_dumps(value)"),
    ("return os.environ['KEY']", "AF402", "event.payload"),
    ("return requests.get('u')", "AF402", "env.http"),
    ("return await asyncio.wait_for(step.do('x', lambda: 1), 5)", "AF402", "timeout="),
])
def test_each_banned_name_gets_the_plan_side_alternative(body: str, code: str,
                                                          fix: str) -> None:
    found = findings(body)
    assert found and found[0][0] == code, found
    assert fix in found[0][2], found[0]


def test_no_banned_name_is_left_with_a_generic_hint() -> None:
    for name in [*NONDETERMINISTIC, *FORBIDDEN]:
        (code, _message, hint), *_ = findings(f"return {name}")
        assert code in ("AF401", "AF402"), (name, code)
        assert hint and hint != "This name gives access to the interpreter or the host " \
                               "and is not available in plans.", name


def test_import_hints_name_the_replacement() -> None:
    for module, fix in [("time", "step.now()"), ("asyncio", "gather"), ("json", "json_dumps"),
                        ("requests", "env.http"), ("random", "step.random()")]:
        found = validate(f"import {module}\n" + plan("return 1")).diagnostics
        assert found[0].code == "AF301" and fix in found[0].hint, (module, found[0])


def test_asyncio_gather_is_one_finding_not_noisy_af201s() -> None:
    found = findings('a, b = await asyncio.gather(step.do("a", lambda: 1), '
                     'step.do("b", lambda: 2))\nreturn [a, b]')
    assert [code for code, _m, _h in found] == ["AF402"]
    assert "`gather`" in found[0][2]


@pytest.mark.parametrize(("body", "says"), [
    ('await step.do("x")', "needs a function"),
    ('await step.do("x", 42)', "must be a function"),
    ('await step.do("x", env.kv.get("k"))', "before the step starts"),
    ('await step.do("x", lambda: 1, retries=3)', "must be a dict"),
    ('await step.do("x", lambda: 1, retries={"max": 3})', "has no key 'max'"),
    ('await step.do("x", lambda: 1, retry={"limit": 3})', "has no argument `retry`"),
    ('await step.do("x", lambda: 1, {"limit": 3})', "at most 2 positional"),
    ('await step.sleep("x")', "needs a duration"),
    ("await step.sleep(5)", "needs a step name"),
    ('await step.sleep_until("x")', "needs a time"),
    ('await step.wait_for_event("x")', "needs `type=`"),
    ('await step.wait_for_event("x", "reply")', "by keyword only"),
    ('await step.wait_for_event("x", typ="reply")', "has no argument `typ`"),
    ('await step.now("x")', "takes no arguments"),
])
def test_step_method_arguments_are_checked(body: str, says: str) -> None:
    found = [f for f in findings(body) if f[0] == "AF207"]
    assert found and says in found[0][1], findings(body)


def test_step_calls_written_right_pass() -> None:
    assert validate(plan(
        'a = await step.do("a", lambda: 1, retries={"limit": 2, "delay": 1}, timeout=5)\n'
        'b = await step.do(name="b", fn=lambda: 2)\n'
        'await step.sleep("s", 5)\nawait step.sleep_until("u", 0)\n'
        'e = await step.wait_for_event("w", type="reply", timeout="1 day")\n'
        'n = await step.now()\nreturn [a, b, e, n.year]')).ok


LATE = [
    "return await gather(*[step.do(f'f{i}', lambda: i) for i in range(3)])",
    "calls = []\nfor u in event.payload:\n    calls.append(step.do(f'g {u}', lambda: u))\n"
    "return await gather(*calls)",
    "calls = []\nfor item in event.payload:\n    url = item['url']\n"
    "    calls.append(step.do(f'g {url}', lambda: url))\nreturn await gather(*calls)",
    "calls = []\nfor u in event.payload:\n    def fetch():\n        return u\n"
    "    calls.append(step.do(f'g {u}', fetch))\nreturn await gather(*calls)",
    "return await gather(*[step.do(f'f{i}', fn=lambda: i) for i in range(3)])",
]
ON_TIME = [
    "return await gather(*[step.do(f'f{i}', lambda i=i: i) for i in range(3)])",
    "out = []\nfor u in event.payload:\n    out.append(await step.do(f'g {u}', lambda: u))\n"
    "return out",
    "out = []\nfor u in event.payload:\n    a, b = await gather(step.do(f'a {u}', lambda: u), "
    "step.do(f'b {u}', lambda: u))\n    out.append(a + b)\nreturn out",
    "k = 2\nreturn await gather(*[step.do(f'f{i}', lambda i=i: i * k) for i in range(3)])",
]


@pytest.mark.parametrize("body", LATE)
def test_late_bound_loop_variables_are_found(body: str) -> None:
    found = [f for f in findings(body) if f[0] == "AF208"]
    assert found, findings(body)
    assert "=" in found[0][2] and "default argument" in found[0][2]


@pytest.mark.parametrize("body", ON_TIME)
def test_functions_that_run_at_once_or_bind_their_value_pass(body: str) -> None:
    assert "AF208" not in [f[0] for f in findings(body)], findings(body)


GRANTED = {"kv": ["get", "set"], "mail": None}


def test_validate_with_grants_flags_what_is_not_granted() -> None:
    body = ('a = await step.do("a", lambda: env.http.get_json("u"))\n'
            'b = await step.do("b", lambda: env.kv.put("k", 1))\n'
            'c = await step.do("c", lambda: env.mail.anything("x"))\n'
            'd = await step.do("d", lambda: env.kv.get("k"))\nreturn [a, b, c, d]')
    found = findings(body, capabilities=GRANTED)
    assert [(f[0], f[1]) for f in found] == [
        ("AF409", "capability `http` is not granted to this agent (granted: kv, mail)"),
        ("AF409", "`env.kv` has no method `put` (methods: get, set)")]
    assert "`get`, `set`" in found[1][2]
    assert findings(body) == []  # without grants, env is not checked
    (none,) = findings('return await step.do("a", lambda: env.kv.get("k"))',
                       capabilities={})
    assert "granted: none" in none[1] and "no capabilities" in none[2]


def test_print_is_allowed() -> None:
    assert validate(plan('print("hello", 1, sep="-")\nreturn 1')).ok
    assert [f[0] for f in findings("return printed")] == ["AF402"]


@pytest.mark.parametrize(("body", "fix"), [
    ('await step.sleep("w", timedelta(hours=1))', '"12 hours"'),
    ('logger.info("started")', "print(...)"),
    ("return math.sqrt(2)", "x ** 0.5"),
    ('return payload["x"]', "event.payload"),
    ('return datetime.fromisoformat("2027-01-01")', "sleep_until"),
])
def test_names_models_reach_for_get_a_replacement(body: str, fix: str) -> None:
    (found, *_) = findings(body)
    assert fix in found[2], found
    assert "deterministic" not in found[2] or "step.now()" in found[2]
