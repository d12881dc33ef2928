"""What to write instead: the plan-side alternative for each name a plan cannot use.

The validator's findings are read by a model that will rewrite the plan from the hint
alone, so each hint names the exact replacement, and a call such as ``time.sleep(5)``
gets the hint for *that* call (``await step.sleep(...)``), not the one for the module
(``step.now()``). `name_hint` answers for a bare name, `attribute_hint` for
``module.attr``; `import_hint` for ``import module``.
"""

from __future__ import annotations

__all__ = ["CONTROL_FLOW_EXCEPTIONS", "FORBIDDEN", "NONDETERMINISTIC", "attribute_hint",
           "import_hint", "name_hint", "undefined_hint"]

_NOW = "use `now = await step.now()` (a UTC datetime, recorded so replays see the same)"
_SLEEP = "use `await step.sleep(\"pause\", 5)` (seconds, or \"5 minutes\"); it is durable"
_RANDOM = "use `await step.random()` for a float in [0, 1)"
_UUID = "use `await step.uuid()`"
_GATHER = ("use the provided `gather`: `await gather(step.do(\"a\", ...), "
           "step.do(\"b\", ...))`")
_FILES = ("plans cannot reach files or the host: take the data from `event.payload`, "
          "or call a granted capability inside a step (`await step.do(\"read\", lambda: "
          "env.kv.get(key))`)")
_CAPABILITY = ("plans cannot reach the network or the host directly: call a granted "
               "capability inside a step, e.g. `await step.do(\"fetch\", lambda: "
               "env.http.get_json(url))`")
_DICTS = "use dicts and plain functions"

#: Names that differ between runs, and how to get a recorded value instead.
NONDETERMINISTIC: dict[str, str] = {
    "time": _NOW,
    "datetime": _NOW + "; `event.timestamp` is the creation time",
    "date": _NOW + " and `.date()` is not available: use `now.year`, `now.month`, `now.day`",
    "random": _RANDOM,
    "secrets": "use `await step.uuid()` or `await step.random()`",
    "uuid": _UUID,
    "uuid4": _UUID,
    "hash": "`hash()` of str is randomized per process; compare values directly",
    "id": "`id()` differs between runs; compare values directly",
}

#: Names that reach the interpreter or the host, and what to do instead.
FORBIDDEN: dict[str, str] = {
    **{name: _CAPABILITY for name in (
        "os", "sys", "subprocess", "socket", "signal", "importlib", "ctypes", "threading",
        "multiprocessing", "shutil", "tempfile", "pathlib", "io", "requests", "httpx",
        "urllib", "aiohttp")},
    **{name: _FILES for name in ("open", "file", "input", "raw_input", "execfile")},
    "builtins": "builtins are not reachable; use the names plans provide",
    "breakpoint": "there is no debugger in plans; use `print(...)`, which is logged",
    "inspect": "plans cannot inspect code; use `print(...)` to log values",
    "gc": "plans cannot reach the interpreter",
    "pickle": "use `json_dumps(value)` and `json_loads(text)`",
    "marshal": "use `json_dumps(value)` and `json_loads(text)`",
    "codecs": "use `text.encode()` and `data.decode()`",
    "operator": "write the expression itself, e.g. `lambda a, b: a + b`",
    "functools": "write a small helper function or a loop instead",
    "string": "use str methods and f-strings",
    "eval": "plans cannot run code from text; parse data with `json_loads(text)`",
    "exec": "plans cannot run code from text; write the code in the plan",
    "compile": "plans cannot run code from text; write the code in the plan",
    "globals": "pass values as function arguments",
    "locals": "pass values as function arguments",
    "vars": "use a dict for named values",
    "dir": "use a dict and `d.keys()`",
    "getattr": "read attributes directly (`event.payload`); for a dict use `d.get(key)`",
    "setattr": "use a dict: `d[key] = value`",
    "delattr": "use a dict: `del d[key]` or `d.pop(key, None)`",
    "hasattr": "for a dict use `key in d`",
    "type": "use `isinstance(value, dict)` (or list, str, int, float)",
    "object": _DICTS,
    "super": _DICTS,
    "classmethod": _DICTS,
    "staticmethod": _DICTS,
    "property": _DICTS,
    "help": "see the plan guide (resource agentflow://docs/plan-api)",
    **{name: "return from `run` to end the plan, or raise an error to fail it"
       for name in ("exit", "quit")},
    **{name: "these are not available in plans" for name in ("license", "credits",
                                                             "copyright", "reload")},
    "memoryview": "use `bytes` or `str`",
    "bytearray": "use `bytes` or `str`",
    "format": "use an f-string: `f\"{value:.2f}\"`",
    "iter": "use a `for` loop, or index a list (`items[0]`)",
    "next": "use a `for` loop, or index a list (`items[0]`)",
    "aiter": "use a plain `for` loop with `await` inside it",
    "anext": "use a plain `for` loop with `await` inside it",
    "asyncio": _GATHER + "; to wait, " + _SLEEP,
    "json": "use `json_dumps(value)` and `json_loads(text)`",
    "printed": "`printed` is reserved; `print(...)` writes to the plan's log",
}

CONTROL_FLOW_EXCEPTIONS = frozenset({"BaseException", "SystemExit", "KeyboardInterrupt",
                                     "GeneratorExit", "CancelledError"})
FORBIDDEN.update({name: "plans cannot name control-flow exceptions; catch `Exception` or a "
                        "narrower class" for name in CONTROL_FLOW_EXCEPTIONS})

_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("time", "sleep"): _SLEEP,
    ("asyncio", "sleep"): _SLEEP,
    ("asyncio", "gather"): _GATHER,
    ("asyncio", "wait"): _GATHER,
    ("asyncio", "create_task"): _GATHER,
    ("asyncio", "ensure_future"): _GATHER,
    ("asyncio", "run"): "plans are already async: `await` the call in `run` directly",
    ("asyncio", "wait_for"): "give the step a timeout: `await step.do(\"x\", fn, "
                             "timeout=\"30 seconds\")`",
    ("asyncio", "timeout"): "give the step a timeout: `await step.do(\"x\", fn, "
                            "timeout=\"30 seconds\")`",
    ("json", "dumps"): "use `json_dumps(value)`",
    ("json", "loads"): "use `json_loads(text)`",
    ("uuid", "uuid4"): _UUID,
    ("uuid", "uuid1"): _UUID,
    ("random", "choice"): "use `items[int(await step.random() * len(items))]`",
    ("random", "randint"): "use `a + int(await step.random() * (b - a + 1))`",
    ("date", "today"): NONDETERMINISTIC["date"],
    ("os", "environ"): "plans cannot read the host's environment: pass settings in "
                       "`event.payload`",
    ("os", "getenv"): "plans cannot read the host's environment: pass settings in "
                      "`event.payload`",
}

_PARSE_TIME = ("plans cannot parse dates: pass ISO text or epoch seconds straight to "
               "`await step.sleep_until(\"wake\", when)`, or compare ISO strings")
_ATTRIBUTES.update({("datetime", attr): _PARSE_TIME
                    for attr in ("fromisoformat", "strptime", "fromtimestamp")})

# Names models reach for that plans do not define (AF407), and what to use instead.
_UNDEFINED: dict[str, str] = {
    "timedelta": "give durations as numbers of seconds or text: `\"90 seconds\"`, "
                 "`\"12 hours\"`, `\"3 days\"`",
    "logging": "use `print(...)`: it is kept as the plan's log",
    "logger": "use `print(...)`: it is kept as the plan's log",
    "log": "use `print(...)`: it is kept as the plan's log",
    "math": "use operators and builtins: `x ** 0.5`, `round(x)`, `abs(x)`, `min`, `max`",
    "re": "use str methods: `split`, `startswith`, `replace`, `strip`, `find`",
    "sleep": _SLEEP,
    "requests": _CAPABILITY,
    "httpx": _CAPABILITY,
    "fetch": _CAPABILITY,
    "http": "capabilities are under `env`: `env.http` (if granted)",
    "kv": "capabilities are under `env`: `env.kv` (if granted)",
    "llm": "capabilities are under `env`: `env.llm` (if granted)",
    "Decimal": "use `float` or `int` (cents) and `round(x, 2)`",
    "defaultdict": "use a dict with `d.get(key, default)` or `d.setdefault(key, [])`",
    "Counter": "count with a dict: `counts[k] = counts.get(k, 0) + 1`",
    "payload": "the params are `event.payload`",
    "params": "the params are `event.payload`",
}

_IMPORTS: dict[str, str] = {
    "time": _NOW + "; to wait, " + _SLEEP,
    "datetime": NONDETERMINISTIC["datetime"],
    "random": _RANDOM,
    "uuid": _UUID,
    "secrets": NONDETERMINISTIC["secrets"],
    "json": FORBIDDEN["json"],
    "asyncio": FORBIDDEN["asyncio"],
    **{name: _CAPABILITY for name in ("requests", "httpx", "urllib", "aiohttp", "os",
                                      "subprocess", "socket", "sys", "pathlib", "shutil")},
}


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def name_hint(name: str) -> str | None:
    """The fix for a bare use of ``name``, or None for the code's generic hint."""
    if name in NONDETERMINISTIC:
        return "Plans are replayed and must be deterministic: " + NONDETERMINISTIC[name] + "."
    text = FORBIDDEN.get(name)
    return _sentence(text) if text else None


def attribute_hint(name: str, attr: str) -> str | None:
    """The fix for ``name.attr`` (``time.sleep``, ``asyncio.gather``), if it differs."""
    if name in ("time", "datetime") and attr in ("time", "monotonic", "perf_counter", "now",
                                                 "utcnow", "today", "time_ns"):
        return "Plans are replayed and must be deterministic: " + _NOW + "."
    text = _ATTRIBUTES.get((name, attr))
    if text is None:
        return None
    if name in NONDETERMINISTIC and text not in (_SLEEP, _PARSE_TIME):
        return "Plans are replayed and must be deterministic: " + text + "."
    return _sentence(text)


def undefined_hint(name: str) -> str | None:
    """The fix for a name plans do not define, when models often reach for it."""
    text = _UNDEFINED.get(name)
    return _sentence(text) if text else None


def import_hint(module: str) -> str | None:
    """The fix for ``import module`` (its first dotted part), if there is a better one."""
    text = _IMPORTS.get(module.split(".")[0])
    return ("Remove the import: plans cannot import modules. " + _sentence(text)
            if text else None)
