"""The RestrictedPython policy for plans: the stock policy plus `async def` and `await`.

RestrictedPython 9.0 rejects `async def` and `await`. Plans need both, and nothing else
new: `async for`, `async with` and async comprehensions stay rejected.

The trap (SANDBOX.md, and CVE-2026-55830 for positional-only parameters): a policy that
only visits the contents of an `async def` skips the checks that `visit_FunctionDef`
makes, so ``async def run(event, step, _write_=lambda o: o)`` would compile and the
parameter would replace the write guard inside the function. `visit_AsyncFunctionDef`
below does exactly what `visit_FunctionDef` does: `check_name`,
`check_function_argument_names` and a fresh print scope. A test compiles that attack
with a naive policy (it escapes) and with this one (it is rejected).
"""

from __future__ import annotations

import ast

from RestrictedPython.transformer import RestrictingNodeTransformer

__all__ = ["PlanPolicy"]


class PlanPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, allowing `async def` and `await` and nothing more."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        # Same checks as RestrictingNodeTransformer.visit_FunctionDef.
        self.check_name(node, node.name, allow_magic_methods=True)
        self.check_function_argument_names(node)
        with self.print_info.new_print_scope():
            node = self.node_contents_visit(node)
            self.inject_print_collector(node)  # type: ignore[arg-type]
        return node

    def visit_Await(self, node: ast.Await) -> ast.AST:
        # The awaited expression is still visited, so its attribute, item and call
        # accesses go through the guards.
        return self.node_contents_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        # Every ``{value!conv:spec}`` is handed to `_format_` (`format_value`), which
        # (1) formats from the sandbox's own module: ``f"{when:%Y-%m-%d}"`` makes
        # datetime's C code import `time` through the running frame's builtins, and plans
        # have no `__import__`; and (2) scrubs heap addresses and host module paths from
        # the text of objects that are not plain data (``f"{gather}"``, ``f"{step!r}"``).
        node = self.node_contents_visit(node)
        spec = node.format_spec if node.format_spec is not None else ast.Constant("")
        call = ast.Call(func=ast.Name("_format_", ast.Load()),
                        args=[node.value, spec, ast.Constant(node.conversion)], keywords=[])
        node.value = ast.copy_location(call, node.value)
        node.format_spec = None
        node.conversion = -1
        ast.fix_missing_locations(node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        # ``a % b`` goes to `_mod_` (`plan_mod`): printf-style formatting of a str would
        # show a host object's address and module path (``"%s" % helper``).
        node = self.node_contents_visit(node)
        if not isinstance(node.op, ast.Mod):
            return node
        call = ast.Call(func=ast.Name("_mod_", ast.Load()), args=[node.left, node.right],
                        keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        if node.is_async:
            self.error(node.target, "Async comprehensions are not allowed.")
        return super().visit_comprehension(node)  # type: ignore[return-value]
