"""Layer 2: the async RestrictedPython policy, and validate-then-compile of the same AST."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import types
from typing import Any

import pytest
from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer

import sandbox._compile as compile_module
from sandbox import CompiledPlan, PlanValidationError, compile_plan, validate
from sandbox._namespace import plan_globals
from sandbox._policy import PlanPolicy
from tests.sandbox.support import plan


class NaiveAsyncPolicy(RestrictingNodeTransformer):
    """The trap of SANDBOX.md: allow async def by visiting its contents only."""

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self.node_contents_visit(node)

    def visit_Await(self, node: ast.Await) -> ast.AST:
        return self.node_contents_visit(node)


SHADOWING_ATTACKS = [
    "async def attack(_write_=lambda ob: ob):\n    target.flag = 'pwned'\n",
    "async def attack(_write_=lambda ob: ob, /):\n    target.flag = 'pwned'\n",
    "async def attack(*, _write_=lambda ob: ob):\n    target.flag = 'pwned'\n",
]


def _run_attack(code: types.CodeType) -> types.SimpleNamespace:
    target = types.SimpleNamespace(flag="safe")
    namespace: dict[str, Any] = plan_globals(env=None)
    namespace["target"] = target
    exec(code, namespace)
    with contextlib.suppress(TypeError):  # the write guard refused the write
        asyncio.run(namespace["attack"]())
    return target


@pytest.mark.parametrize("source", SHADOWING_ATTACKS)
def test_guard_shadowing_escapes_a_naive_async_policy(source: str) -> None:
    result = compile_restricted_exec(source, policy=NaiveAsyncPolicy)
    assert result.errors == ()
    assert result.code is not None
    assert _run_attack(result.code).flag == "pwned"  # the write guard was replaced


@pytest.mark.parametrize("source", SHADOWING_ATTACKS)
def test_the_plan_policy_rejects_guard_shadowing(source: str) -> None:
    result = compile_restricted_exec(source, policy=PlanPolicy)
    assert result.code is None
    assert any('"_write_" is an invalid variable name' in e for e in result.errors)


def test_without_shadowing_the_write_guard_holds() -> None:
    result = compile_restricted_exec("async def attack():\n    target.flag = 'pwned'\n",
                                     policy=PlanPolicy)
    assert result.code is not None
    assert _run_attack(result.code).flag == "safe"


@pytest.mark.parametrize("source", [
    "async def f(x):\n    return [i async for i in x]\n",
    "async def f(x):\n    async for i in x:\n        pass\n",
    "async def f(x):\n    async with x:\n        pass\n",
    "async def _f(x):\n    return 1\n",
    "async def f(x):\n    return await x.__class__\n",
])
def test_the_policy_allows_async_def_and_await_and_nothing_more(source: str) -> None:
    assert compile_restricted_exec(source, policy=PlanPolicy).errors


def test_await_expressions_still_go_through_the_guards() -> None:
    result = compile_restricted_exec("async def f(x):\n    return await x.y[0]\n",
                                     policy=PlanPolicy)
    names = set(result.code.co_consts[0].co_names) if result.code else set()
    assert {"_getattr_", "_getitem_"} <= names


def test_the_tree_that_was_checked_is_the_tree_that_is_compiled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real_check = compile_module.check_source  # type: ignore[attr-defined]
    real_compile = compile_module.compile_restricted_exec  # type: ignore[attr-defined]

    def spy_check(source: object, filename: str = "<plan>") -> Any:
        diagnostics, tree = real_check(source, filename)
        seen["checked"] = tree
        return diagnostics, tree

    def spy_compile(source: Any, **kwargs: Any) -> Any:
        seen["compiled"] = source
        return real_compile(source, **kwargs)

    monkeypatch.setattr(compile_module, "check_source", spy_check)
    monkeypatch.setattr(compile_module, "compile_restricted_exec", spy_compile)
    compile_plan(plan("return 'same tree object'"))
    assert isinstance(seen["checked"], ast.Module)
    assert seen["compiled"] is seen["checked"]


def test_compile_plan_returns_source_hash_and_code() -> None:
    source = plan("return 42")
    compiled = compile_plan(source, filename="<agent-7/digest>")
    assert isinstance(compiled, CompiledPlan)
    assert compiled.source == source
    assert compiled.sha256 == hashlib.sha256(source.encode()).hexdigest()
    assert isinstance(compiled.code, types.CodeType)
    assert compiled.code.co_filename == "<agent-7/digest>"
    assert compile_plan(source, filename="<agent-7/digest>") is compiled  # cached


def test_compile_plan_raises_with_the_report() -> None:
    source = plan("import os\nreturn os.environ")
    with pytest.raises(PlanValidationError) as caught:
        compile_plan(source)
    assert caught.value.report == validate(source)
    assert "AF301" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_validate_agrees_with_compile_plan_on_restricted_python_errors() -> None:
    source = plan("a__roles__ = 1\nreturn a__roles__")
    report = validate(source)
    assert [d.code for d in report.diagnostics] == ["AF006", "AF006"]
    with pytest.raises(PlanValidationError):
        compile_plan(source)
