"""Layer 1: static validation of plan source, before anything runs.

`check_source` parses the source once and walks the tree; `sandbox._compile` then
hands *that same tree object* to RestrictedPython (a check-then-reparse gap was a real
asteval CVE). Nothing is normalised by regex: the parser folds Unicode look-alikes
(``ｅｖａｌ`` is ``eval`` in the tree), so the checks see what Python will run.

It never raises: garbage, binary, NUL bytes, surrogates and deep nesting all become
diagnostics. Parsing is linear in the (capped) size, and the walks below are bounded by
`MAX_NODES` and `MAX_DEPTH`, which also keeps RestrictedPython's recursive transformer
and CPython's compiler well inside their recursion limits.

(Over 400 lines, on purpose: one walk of the tree applies every rule, so that a
node is judged once and the bounds above hold; the hints and the step-call checks
already live in `_hints.py` and `_stepcheck.py`.)
"""

from __future__ import annotations

import ast
import re
import warnings

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox._hints import (
    CONTROL_FLOW_EXCEPTIONS,
    FORBIDDEN,
    NONDETERMINISTIC,
    attribute_hint,
    import_hint,
    name_hint,
    undefined_hint,
)
from sandbox._namespace import PLAN_GLOBAL_NAMES
from sandbox._report import Diagnostic, diagnostic
from sandbox._stepcheck import STEP_METHODS, Grants, StepCallChecker, value_functions

__all__ = ["MAX_DEPTH", "MAX_DIAGNOSTICS", "MAX_NODES", "MAX_SOURCE_CHARS", "STEP_METHODS",
           "check_source", "parse_quietly"]

MAX_SOURCE_CHARS = 100_000
MAX_NODES = 40_000
MAX_DEPTH = 100
MAX_DIAGNOSTICS = 50


_ALWAYS_FORBIDDEN = frozenset({"builtins", "breakpoint", "printed"})  # reserved by
# RestrictedPython (`printed` reads its print collector; plan logs replace it)
_NAMED_CONSTRUCTS: dict[type, str] = {
    ast.Import: "AF301", ast.ImportFrom: "AF301", ast.ClassDef: "AF302",
    ast.Global: "AF303", ast.Nonlocal: "AF303", ast.Yield: "AF304", ast.YieldFrom: "AF304",
    ast.AsyncFor: "AF305", ast.AsyncWith: "AF305", ast.Match: "AF306", ast.With: "AF307",
    ast.TryStar: "AF308",
}
_CONSTANT_NODES = (ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp,
                   ast.BinOp, ast.operator, ast.unaryop, ast.Load)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def parse_quietly(source: str, filename: str) -> ast.Module:
    """`ast.parse` without letting SyntaxWarning/DeprecationWarning escape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source, filename, "exec")


def check_source(source: object, filename: str = "<plan>", grants: Grants | None = None
                 ) -> tuple[list[Diagnostic], ast.Module | None]:
    """Run every static check. Returns the diagnostics and the parsed tree (or None).

    ``grants`` (capability name -> its methods, None for any) turns on the checks of
    ``env.<capability>.<method>`` against what the agent was granted.
    """
    if not isinstance(source, str):
        return [diagnostic("AF001", f"expected a str, got {type(source).__name__}")], None
    if len(source) > MAX_SOURCE_CHARS:
        return [diagnostic("AF002", f"the source has {len(source):,} characters; the "
                                    f"limit is {MAX_SOURCE_CHARS:,}")], None
    try:
        tree = parse_quietly(source, filename)
    except SyntaxError as exc:
        return [diagnostic("AF003", str(exc.msg), line=exc.lineno or 1,
                           col=exc.offset or 1)], None
    except (ValueError, UnicodeError) as exc:  # NUL bytes (<3.12), lone surrogates
        return [diagnostic("AF003", f"the source cannot be parsed: {exc}")], None
    except (MemoryError, RecursionError):
        return [diagnostic("AF004", "the source nests too deeply for the parser")], None
    size = _size_check(tree)
    if size:
        return [size], None
    checker = _Checker(source, grants)
    checker.check_module(tree)
    return sorted(checker.diagnostics, key=lambda d: (d.line, d.col)), tree


def _size_check(tree: ast.AST) -> Diagnostic | None:
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return diagnostic("AF005", f"the plan has more than {MAX_NODES:,} syntax nodes")
        if depth > MAX_DEPTH:
            line = getattr(node, "lineno", 1)
            return diagnostic("AF004", f"nesting deeper than {MAX_DEPTH} levels", line=line)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def _bound_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


class _Checker:
    def __init__(self, source: str, grants: Grants | None = None) -> None:
        self.source = source
        self.steps = StepCallChecker(self.report, grants)
        self.diagnostics: list[Diagnostic] = []
        self.bound: set[str] = set()
        self._lines: list[str] | None = None

    # -- reporting ---------------------------------------------------------------------

    def report(self, code: str, node: ast.AST | None, message: str,
               hint: str | None = None) -> None:
        if len(self.diagnostics) >= MAX_DIAGNOSTICS:
            return
        line, col = self._position(node)
        self.diagnostics.append(diagnostic(code, message, line=line, col=col, hint=hint))

    def _position(self, node: ast.AST | None) -> tuple[int, int]:
        line = getattr(node, "lineno", None) or 1
        offset = getattr(node, "col_offset", None) or 0
        try:  # col_offset counts UTF-8 bytes; report characters
            if self._lines is None:
                self._lines = re.split(r"\r\n|\r|\n", self.source)
            text = self._lines[line - 1].encode("utf-8", "surrogatepass")
            return line, len(text[:offset].decode("utf-8", "replace")) + 1
        except Exception:
            return line, offset + 1

    # -- module shape ------------------------------------------------------------------

    def check_module(self, tree: ast.Module) -> None:
        self.bound = _bound_names(tree)
        self.steps.value_functions = value_functions(tree)
        seen: set[str] = set()
        run: ast.AST | None = None
        for index, stmt in enumerate(tree.body):
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self._check_unique(stmt.name, stmt, seen)
                if stmt.name == "run":
                    run = stmt
            elif isinstance(stmt, ast.Assign):
                self._check_constant_assign(stmt, seen)
            elif (index == 0 and isinstance(stmt, ast.Expr)
                  and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                pass  # module docstring
            elif type(stmt) not in _NAMED_CONSTRUCTS:
                self.report("AF101", stmt, f"`{_describe(stmt)}` is not allowed at top level")
        if run is None:
            self.report("AF102", None, "the plan does not define `async def run(event, step)`")
        else:
            self._check_run_signature(run)
        self._walk(tree, [])

    def _check_unique(self, name: str, node: ast.AST, seen: set[str]) -> None:
        if name in seen:
            self.report("AF104", node, f"`{name}` is defined more than once at top level")
        seen.add(name)

    def _check_constant_assign(self, stmt: ast.Assign, seen: set[str]) -> None:
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            self.report("AF101", stmt, "a top-level assignment must bind one plain name")
            return
        self._check_unique(stmt.targets[0].id, stmt, seen)
        if not all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(stmt.value)) or any(
                isinstance(n, ast.Dict) and None in n.keys for n in ast.walk(stmt.value)):
            self.report("AF106", stmt.value,
                        f"`{stmt.targets[0].id}` is not assigned a literal constant")

    def _check_run_signature(self, run: ast.AST) -> None:
        if not isinstance(run, ast.AsyncFunctionDef):
            self.report("AF103", run, "`run` must be defined with `async def`")
            return
        a = run.args
        names = [arg.arg for arg in a.args]
        if (names != ["event", "step"] or a.posonlyargs or a.vararg or a.kwonlyargs
                or a.kwarg or a.defaults):
            self.report("AF103", run, "`run` must take exactly the parameters `(event, step)`")

    # -- the walk ----------------------------------------------------------------------

    def _walk(self, node: ast.AST, parents: list[ast.AST]) -> None:
        self._check_node(node, parents)
        parents.append(node)
        for child in ast.iter_child_nodes(node):
            self._walk(child, parents)
        parents.pop()

    def _check_node(self, node: ast.AST, parents: list[ast.AST]) -> None:
        code = _NAMED_CONSTRUCTS.get(type(node))
        if code:
            hint = None
            if isinstance(node, ast.Import) and node.names:
                hint = import_hint(node.names[0].name)
            elif isinstance(node, ast.ImportFrom) and node.module:
                hint = import_hint(node.module)
            self.report(code, node, f"`{_describe(node)}` is not allowed in plans", hint)
        if isinstance(node, ast.comprehension) and node.is_async:
            self.report("AF305", node.target, "async comprehensions are not allowed")
        elif isinstance(node, ast.Await) and _inside_comprehension(parents):
            self.report("AF305", node, "`await` inside a comprehension makes it an async "
                                       "comprehension, which is not allowed")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.decorator_list:
                self.report("AF105", node.decorator_list[0],
                            f"decorator on `{node.name}` is not allowed")
            self._check_binding(node.name, node)
            self.steps.check_late_binding(node, parents, _is_awaited)
        elif isinstance(node, ast.Lambda):
            self.steps.check_late_binding(node, parents, _is_awaited)
        elif isinstance(node, ast.arg):
            self._check_binding(node.arg, node if hasattr(node, "lineno") else parents[-1])
        elif isinstance(node, ast.ExceptHandler):
            self._check_handler(node)
        elif isinstance(node, ast.Name):
            self._check_name(node, parents)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node, parents)
        elif isinstance(node, ast.Call):
            self._check_call(node, parents)

    def _check_binding(self, name: str, node: ast.AST) -> None:
        if name.startswith("_") and name != "_":
            self.report("AF403", node, f"`{name}` starts with an underscore")
        elif name in _ALWAYS_FORBIDDEN:
            self.report("AF402", node, f"`{name}` is a reserved name")

    def _check_handler(self, node: ast.ExceptHandler) -> None:
        if node.type is None:
            self.report("AF501", node, "bare `except:` also catches control-flow signals")
        else:
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            for t in types:
                name = t.id if isinstance(t, ast.Name) else (
                    t.attr if isinstance(t, ast.Attribute) else None)
                if name in CONTROL_FLOW_EXCEPTIONS:
                    self.report("AF502", t, f"catching `{name}` is not allowed")
        if node.name:
            self._check_binding(node.name, node)

    def _check_name(self, node: ast.Name, parents: list[ast.AST]) -> None:
        name = node.id
        if name.startswith("_") and name != "_":
            self.report("AF403", node, f"`{name}` starts with an underscore")
            return
        if name in _ALWAYS_FORBIDDEN:
            self.report("AF402", node, f"`{name}` is not available in plans",
                        hint=name_hint(name))
            return
        if name in CONTROL_FLOW_EXCEPTIONS and parents and isinstance(
                parents[-1], ast.ExceptHandler | ast.Tuple):
            return  # reported as AF502 by _check_handler
        if name == "step" and isinstance(node.ctx, ast.Load):
            self._check_step_use(node, parents)
        if not isinstance(node.ctx, ast.Load) or name in self.bound:
            return
        parent = parents[-1] if parents else None
        hint = name_hint(name)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            hint = attribute_hint(name, parent.attr) or hint
        if name in NONDETERMINISTIC:
            self.report("AF401", node, f"`{name}` is nondeterministic and not available",
                        hint=hint)
        elif name in FORBIDDEN:
            self.report("AF402", node, f"`{name}` is not available in plans", hint=hint)
        elif name not in PLAN_GLOBAL_NAMES:
            self.report("AF407", node, f"`{name}` is not defined", hint=undefined_hint(name))

    def _check_step_use(self, node: ast.Name, parents: list[ast.AST]) -> None:
        parent = parents[-1] if parents else None
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # step.x: checked with the attribute / call
        if isinstance(parent, ast.Call) and parent.func is not node:
            return  # passed to a helper: helper(step)
        if isinstance(parent, ast.keyword):
            return
        self.report("AF204", node, "`step` may only be called (`await step.do(...)`) or "
                                   "passed to a helper function")

    def _check_attribute(self, node: ast.Attribute, parents: list[ast.AST]) -> None:
        attr = node.attr
        if attr.startswith("_") and attr != "_":
            self.report("AF404", node, f"attribute `{attr}` starts with an underscore")
        elif attr in INSPECT_ATTRIBUTES:
            self.report("AF405", node, f"attribute `{attr}` is not accessible in plans")
        elif attr in ("format", "format_map"):
            self.report("AF406", node, f"`.{attr}(...)` is not available in plans")
        if (isinstance(node.value, ast.Name) and node.value.id == "env"
                and "env" not in self.bound):
            self.steps.check_env(node, parents)
        if isinstance(node.value, ast.Name) and node.value.id == "step":
            parent = parents[-1] if parents else None
            if not (isinstance(parent, ast.Call) and parent.func is node):
                self.report("AF204", node, f"`step.{attr}` must be called directly")

    def _check_call(self, node: ast.Call, parents: list[ast.AST]) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("exec", "eval"):
            if func.id in self.bound:  # RestrictedPython rejects these calls by name
                self.report("AF402", node, f"`{func.id}()` is not available in plans")
            return
        if isinstance(func, ast.Name) and func.id == "gather" and "gather" not in self.bound:
            if not (parents and isinstance(parents[-1], ast.Await)):
                self.report("AF201", node, "`gather(...)` must be awaited")
            return
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and func.value.id == "step"):
            return
        method = func.attr
        if method not in STEP_METHODS:
            self.report("AF203", node, f"`step.{method}` does not exist")
            return
        if not _is_awaited(node, parents) and not _in_foreign_gather(parents):
            self.report("AF201", node, f"`step.{method}(...)` is not awaited")
        self.steps.check_arguments(method, node)
        if STEP_METHODS[method]:
            name = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "name"), None)
            if name is None:
                self.report("AF205", node, f"`step.{method}` needs a step name")
            elif method == "sleep" and isinstance(name, ast.Constant) and isinstance(
                    name.value, int | float) and len(node.args) == 1:
                pass  # reported as AF206: the duration came without a name
            elif not (isinstance(name, ast.JoinedStr) or (
                    isinstance(name, ast.Constant) and isinstance(name.value, str))):
                self.report("AF202", name, f"the name of `step.{method}` must be a string "
                                           f"literal or an f-string")
            else:
                parts = [name] if isinstance(name, ast.Constant) else name.values
                for part in parts:
                    found = isinstance(part, ast.Constant) and isinstance(
                        part.value, str) and _UNSHOWABLE.search(part.value)
                    if found:
                        self.report("AF206", name, f"the name of `step.{method}` holds "
                                                   f"{found.group()!a}")
                        break


# Control, zero-width and bidi characters: names are shown to people and models (the
# engine refuses them too, for names built at run time).
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                         "\u2060-\u2069\ufeff]")


def _is_awaited(node: ast.AST, parents: list[ast.AST]) -> bool:
    """True for ``await step.x()`` and for step calls inside ``await gather(...)``."""
    child = node
    for i in range(len(parents) - 1, -1, -1):
        parent = parents[i]
        if isinstance(parent, ast.Await):
            return child is node
        if isinstance(parent, ast.Call):
            return (isinstance(parent.func, ast.Name) and parent.func.id == "gather"
                    and child in parent.args and _is_awaited(parent, parents[:i]))
        if not ((isinstance(parent, ast.List | ast.Tuple) and child in parent.elts)
                or (isinstance(parent, ast.Starred) and parent.value is child)
                or (isinstance(parent, ast.ListComp | ast.GeneratorExp)
                and parent.elt is child)):
            return False
        child = parent
    return False


def _in_foreign_gather(parents: list[ast.AST]) -> bool:
    """Inside ``asyncio.gather(...)`` (reported once, as `asyncio`, with the fix)."""
    return any(isinstance(p, ast.Call) and isinstance(p.func, ast.Attribute)
               and p.func.attr in ("gather", "wait", "create_task", "ensure_future")
               and isinstance(p.func.value, ast.Name) and p.func.value.id == "asyncio"
               for p in parents)


def _inside_comprehension(parents: list[ast.AST]) -> bool:
    for parent in reversed(parents):
        if isinstance(parent, _COMPREHENSIONS):
            return True
        if isinstance(parent, _FUNCTIONS):
            return False
    return False


def _describe(node: ast.AST) -> str:
    words: dict[type, str] = {
        ast.Import: "import", ast.ImportFrom: "from ... import", ast.ClassDef: "class",
        ast.Global: "global", ast.Nonlocal: "nonlocal", ast.Yield: "yield",
        ast.YieldFrom: "yield from", ast.AsyncFor: "async for", ast.AsyncWith: "async with",
        ast.Match: "match", ast.With: "with", ast.TryStar: "try/except*", ast.Expr:
        "expression statement", ast.If: "if", ast.For: "for", ast.While: "while",
        ast.Try: "try", ast.AnnAssign: "annotated assignment", ast.AugAssign:
        "augmented assignment", ast.Return: "return", ast.Delete: "del", ast.Raise: "raise",
        ast.Assert: "assert", ast.Pass: "pass",
    }
    return words.get(type(node), type(node).__name__)
