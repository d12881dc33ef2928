"""Static checks of what plans pass to ``step.*`` and ``env.*``.

Three mistakes models make often, each caught before the plan runs:

- **Wrong arguments to a step method** (AF207): ``step.do("x")`` with no function,
  ``step.wait_for_event("reply")`` without ``type=``, ``step.sleep("pause")`` with no
  duration, ``retries=3`` instead of a dict, a keyword the method does not take. At run
  time each of these is a ``TypeError`` that no retry can fix.
- **Late binding** (AF208): a ``lambda`` (or nested ``def``) that reads a loop or
  comprehension variable and runs *later*, when ``gather`` awaits the collected steps.
  By then the variable holds its last value, so every step computes the same thing:
  ``gather(*[step.do(f"f{i}", lambda: i) for i in range(3)])`` returns ``[2, 2, 2]``.
  A step awaited inside the same iteration runs at once and is fine. The fix binds the
  value when the function is made: ``lambda i=i: i``.
- **Capabilities not granted** (AF409): when the validator knows the agent's grants,
  ``env.http`` for an agent without ``http``, or ``env.kv.put`` when ``kv`` has no
  ``put``, with the names that are granted.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping

__all__ = ["STEP_METHODS", "Grants", "StepCallChecker", "late_bound_names",
           "value_functions"]

#: step methods and whether their first argument is the step name.
STEP_METHODS: dict[str, bool] = {"do": True, "sleep": True, "sleep_until": True,
                                 "wait_for_event": True, "now": False, "random": False,
                                 "uuid": False}

#: Capability name -> the methods a plan may call on it (None: any method).
Grants = Mapping[str, Iterable[str] | None]

# method -> (positional parameters, keyword-only parameters, required parameters)
_SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "do": (("name", "fn"), ("retries", "timeout"), ("name", "fn")),
    "sleep": (("name", "duration"), (), ("name", "duration")),
    "sleep_until": (("name", "when"), (), ("name", "when")),
    "wait_for_event": (("name",), ("type", "timeout", "note"), ("name", "type")),
    "now": ((), (), ()),
    "random": ((), (), ()),
    "uuid": ((), (), ()),
}
_EXAMPLES: dict[str, str] = {
    "do": "`await step.do(\"fetch\", lambda: work(x))`",
    "sleep": "`await step.sleep(\"pause\", \"5 minutes\")`",
    "sleep_until": "`await step.sleep_until(\"wake\", now.timestamp() + 3600)`",
    "wait_for_event": "`await step.wait_for_event(\"reply\", type=\"reply\", "
                      "timeout=\"1 day\")`",
    "now": "`now = await step.now()`",
    "random": "`r = await step.random()`",
    "uuid": "`u = await step.uuid()`",
}
_NOT_CALLABLE = (ast.Constant, ast.List, ast.Dict, ast.Tuple, ast.Set, ast.JoinedStr,
                 ast.Await, ast.ListComp, ast.DictComp, ast.SetComp, ast.BinOp,
                 ast.Compare, ast.Subscript)
_RETRY_KEYS = frozenset({"limit", "delay", "backoff"})
# Calls that certainly return a value, never a function to run later.
_VALUE_BUILTINS = frozenset({"str", "int", "float", "bool", "len", "dict", "list", "tuple",
                             "set", "sum", "min", "max", "sorted", "abs", "round", "repr",
                             "json_dumps", "json_loads", "range", "enumerate", "zip"})
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

Report = Callable[[str, ast.AST, str, str | None], None]


def _example(method: str) -> str:
    return f"Write it as {_EXAMPLES[method]}."


class StepCallChecker:
    """Checks step calls, late-bound functions and ``env`` use; reports through
    ``report(code, node, message, hint)``."""

    def __init__(self, report: Report, grants: Grants | None) -> None:
        self.report = report
        #: the plan's own top-level `def`s that cannot return a function (no lambda or
        #: nested def inside): ``step.do("x", work(3))`` calls one too early.
        self.value_functions: set[str] = set()
        self.grants: dict[str, frozenset[str] | None] | None = None if grants is None else {
            name: None if methods is None else frozenset(methods)
            for name, methods in grants.items()}

    # -- arguments ----------------------------------------------------------------------

    def check_arguments(self, method: str, node: ast.Call) -> None:
        positional, keyword_only, required = _SIGNATURES[method]
        given: set[str] = set()
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords):
            return  # *args / **kwargs: nothing to say statically
        if len(node.args) > len(positional):
            extra = node.args[len(positional)]
            if method == "wait_for_event" and len(node.args) == 2:
                self.report("AF207", extra, "`step.wait_for_event` takes the event type by "
                            "keyword only", _example(method))
            elif not positional:
                self.report("AF207", extra, f"`step.{method}()` takes no arguments",
                            _example(method))
            else:
                self.report("AF207", extra, f"`step.{method}` takes at most "
                            f"{len(positional)} positional argument"
                            f"{'s' * (len(positional) > 1)}; pass "
                            f"{', '.join(keyword_only) or 'nothing else'} by keyword",
                            _example(method))
            return
        given.update(positional[:len(node.args)])
        for keyword in node.keywords:
            assert keyword.arg is not None
            if keyword.arg not in positional + keyword_only:
                accepted = ", ".join(positional + keyword_only) or "no arguments"
                hint = _example(method)
                if method == "do" and keyword.arg in ("retry", "retries_limit", "max_retries"):
                    hint = "Write `retries={\"limit\": 3, \"delay\": \"10 seconds\"}`."
                self.report("AF207", keyword, f"`step.{method}` has no argument "
                            f"`{keyword.arg}` (it takes {accepted})", hint)
                return
            given.add(keyword.arg)
        missing = [p for p in required if p not in given and p != "name"]
        if missing and not (method == "sleep" and self._one_duration(node)):
            what = {"fn": "a function to run (`lambda: ...`)", "duration": "a duration",
                    "when": "a time to wake", "type": "`type=`, the event type"}
            self.report("AF207", node, f"`step.{method}` needs {what[missing[0]]}",
                        _example(method))
            return
        if method == "do":
            self._check_do(node)

    def _one_duration(self, node: ast.Call) -> bool:
        # step.sleep(5) / step.sleep("5 minutes"): the duration was given, the name not.
        if len(node.args) == 1 and not node.keywords:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int | float):
                self.report("AF207", node, "`step.sleep` needs a step name before the "
                            "duration", _example("sleep"))
                return True
        return False

    def _check_do(self, node: ast.Call) -> None:
        fn = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == "fn"), None)
        if isinstance(fn, _NOT_CALLABLE) or (
                isinstance(fn, ast.Call) and isinstance(fn.func, ast.Name)
                and fn.func.id in self.value_functions | _VALUE_BUILTINS):
            self.report("AF207", fn, "the second argument of `step.do` must be a function; "
                        "this is a value, computed before the step runs",
                        "Wrap the work in a lambda so the step runs it and records the "
                        "result: `await step.do(\"name\", lambda: work())`.")
        elif isinstance(fn, ast.Call) and isinstance(fn.func, ast.Attribute) and isinstance(
                fn.func.value, ast.Attribute) and isinstance(fn.func.value.value, ast.Name) \
                and fn.func.value.value.id == "env":
            self.report("AF207", fn, "`env.*` is called before the step starts; the step "
                        "needs a function that makes the call",
                        "Wrap it in a lambda: `await step.do(\"call\", lambda: "
                        "env.<capability>.<method>(...))`.")
        retries = next((k.value for k in node.keywords if k.arg == "retries"), None)
        if isinstance(retries, ast.Constant) and retries.value is not None:
            self.report("AF207", retries, "`retries` must be a dict, not a number",
                        "Write `retries={\"limit\": 3, \"delay\": \"10 seconds\", "
                        "\"backoff\": \"exponential\"}` (limit counts retries).")
        elif isinstance(retries, ast.Dict):
            for key in retries.keys:
                if isinstance(key, ast.Constant) and key.value not in _RETRY_KEYS:
                    self.report("AF207", key, f"`retries` has no key {key.value!r}",
                                "Use the keys `limit`, `delay` and `backoff`, e.g. "
                                "`retries={\"limit\": 3, \"delay\": \"10 seconds\"}`.")

    # -- late binding -------------------------------------------------------------------

    def check_late_binding(self, node: ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef,
                           parents: list[ast.AST], awaited: Callable[[ast.AST, list[ast.AST]],
                                                                     bool]) -> None:
        loop_vars = _loop_variables(node, parents)
        if not loop_vars:
            return
        late = sorted(late_bound_names(node) & loop_vars)
        if not late:
            return
        if isinstance(node, ast.Lambda):
            index = len(parents) - 1
            if index > 0 and isinstance(parents[index], ast.keyword):
                index -= 1
            call = parents[index] if parents else None
            if not (isinstance(call, ast.Call) and _is_step_do(call) and _fn_arg(call) is node):
                return
            runs_later = _in_comprehension(parents) or not awaited(call, parents[:index])
            if not runs_later:
                return
            where = "lambda"
            fix = ", ".join(f"{v}={v}" for v in late)
            hint = (f"Bind the value when the lambda is made, with a default argument: "
                    f"`lambda {fix}: ...`; or await each step inside the loop.")
        else:
            body = _loop_body_of(node, parents)
            uses = [c for c in ast.walk(body) if isinstance(c, ast.Call) and _is_step_do(c)
                    and isinstance(_fn_arg(c), ast.Name)
                    and _fn_arg(c).id == node.name]  # type: ignore[union-attr]
            if not uses or all(_directly_awaited(c, body) for c in uses):
                return
            where = f"function `{node.name}`"
            fix = ", ".join(f"{v}={v}" for v in late)
            hint = (f"Bind the value when the function is made, with a default argument: "
                    f"`def {node.name}({fix}):`; or await each step inside the loop.")
        names = ", ".join(f"`{v}`" for v in late)
        self.report("AF208", node, f"this {where} reads the loop variable {names} but runs "
                    f"later, when every step sees its last value", hint)

    # -- env ----------------------------------------------------------------------------

    def check_env(self, node: ast.Attribute, parents: list[ast.AST]) -> None:
        if self.grants is None:
            return
        granted = ", ".join(sorted(self.grants)) or "none"
        if node.attr not in self.grants:
            self.report("AF409", node, f"capability `{node.attr}` is not granted to this "
                        f"agent (granted: {granted})",
                        "Use only the granted capabilities (the tool `describe_capabilities`"
                        " lists them with their methods), or ask the operator to grant "
                        f"`{node.attr}`." if self.grants else
                        "This agent has no capabilities: compute the result in the plan, "
                        "or ask the operator to grant one.")
            return
        methods = self.grants[node.attr]
        parent = parents[-1] if parents else None
        if methods is None or not (isinstance(parent, ast.Attribute) and parent.value is node):
            return
        if parent.attr not in methods:
            self.report("AF409", parent, f"`env.{node.attr}` has no method `{parent.attr}` "
                        f"(methods: {', '.join(sorted(methods))})",
                        f"Call one of `env.{node.attr}`'s methods: "
                        + ", ".join(f"`{m}`" for m in sorted(methods)) + ".")


def value_functions(tree: ast.Module) -> set[str]:
    """Top-level sync functions that cannot return a function (see `StepCallChecker`)."""
    return {stmt.name for stmt in tree.body if isinstance(stmt, ast.FunctionDef)
            and not any(isinstance(n, _FUNCTIONS) for s in stmt.body for n in ast.walk(s))}


def _is_step_do(call: ast.Call) -> bool:
    return (isinstance(call.func, ast.Attribute) and call.func.attr == "do"
            and isinstance(call.func.value, ast.Name) and call.func.value.id == "step")


def _fn_arg(call: ast.Call) -> ast.AST | None:
    if len(call.args) > 1:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "fn"), None)


def late_bound_names(fn: ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names ``fn`` reads from enclosing scopes when it runs (not its parameters)."""
    params: set[str] = set()
    stored: set[str] = set()
    loaded: set[str] = set()
    for sub in ast.walk(fn):
        if isinstance(sub, ast.arg):
            params.add(sub.arg)
        elif isinstance(sub, ast.Name):
            (loaded if isinstance(sub.ctx, ast.Load) else stored).add(sub.id)
    body_stored = stored if not isinstance(fn, ast.Lambda) else set()
    return loaded - params - body_stored


def _targets(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _assigned_in(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, _FUNCTIONS):
            continue  # its own scope
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _loop_variables(node: ast.AST, parents: list[ast.AST]) -> set[str]:
    """Names rebound by each iteration of the loops and comprehensions around ``node``,
    up to the enclosing function."""
    found: set[str] = set()
    child = node
    for parent in reversed(parents):
        if isinstance(parent, _FUNCTIONS):
            break
        if isinstance(parent, _COMPREHENSIONS):
            for gen in parent.generators:
                found |= _targets(gen.target)
        elif isinstance(parent, ast.For | ast.While) and child in parent.body:
            if isinstance(parent, ast.For):
                found |= _targets(parent.target)
            found |= _assigned_in(parent.body)
        child = parent
    return found


def _in_comprehension(parents: list[ast.AST]) -> bool:
    for parent in reversed(parents):
        if isinstance(parent, _FUNCTIONS):
            return False
        if isinstance(parent, _COMPREHENSIONS):
            return True
    return False


def _loop_body_of(node: ast.AST, parents: list[ast.AST]) -> ast.AST:
    for parent in reversed(parents):
        if isinstance(parent, ast.For | ast.While):
            return parent
    return parents[-1]


def _directly_awaited(call: ast.Call, scope: ast.AST) -> bool:
    return any(isinstance(n, ast.Await) and (n.value is call or (
        isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
        and n.value.func.id == "gather" and call in n.value.args))
        for n in ast.walk(scope))
