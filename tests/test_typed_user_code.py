"""Users' code is typed: mypy (strict) checks the README's Python blocks and the
notebooks' code cells against the installed package, and reports a wrong call.

agentflow serves most names lazily (`agentflow.__getattr__`), which a type checker
cannot follow; the ``TYPE_CHECKING`` imports beside the lazy loader give them their
real types. Without them ``from agentflow import AgentFlow`` is ``object`` to mypy and
every call on it is an error, which this test would show.

The user code is checked as written (each README block is a script of its own, each
notebook one program), with two allowances: plans and workflows are written the way
agents write them, without annotations (``--allow-untyped-defs``; the bodies are still
checked), and the model SDKs (``openai``, ``anthropic``) are taken as untyped: their
TypedDict parameters would make any loop written with plain dicts an error, which is
the SDKs' choice and not what this test is about. Top-level ``await`` (notebooks) runs
inside an ``async def``. Modelled on Temporal's ``tests/test_type_errors.py``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--config-file", "mypy.ini", "--no-incremental", "--show-error-codes",
         "--no-error-summary", "--hide-error-context", "--no-color-output"]
CONFIG = """\
[mypy]
strict = True
allow_untyped_defs = True

[mypy-openai.*,anthropic.*]
follow_imports = skip
"""


def _split(code: str) -> tuple[list[str], str]:
    """The top-level import statements of ``code`` and the code without them."""
    tree = ast.parse(code)
    lines = code.splitlines()
    imports, drop = [], set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            end = node.end_lineno or node.lineno
            imports.append("\n".join(lines[node.lineno - 1:end]))
            drop.update(range(node.lineno - 1, end))
    return imports, "\n".join(line for i, line in enumerate(lines) if i not in drop)


def _awaits_at_top(code: str) -> bool:
    tree = ast.parse(code)
    for node in tree.body:
        if isinstance(node, ast.AsyncWith | ast.AsyncFor):
            return True
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                break
            if isinstance(child, ast.Await):
                return True
    return False


def program(blocks: list[str]) -> str:
    """One module from code fragments: imports hoisted to the top, each fragment with
    top-level ``await`` inside its own ``async def``, the others at module level."""
    imports: list[str] = []
    bodies: list[str] = []
    for i, block in enumerate(blocks):
        found, body = _split(block)
        imports += [line for line in found if line not in imports]
        if _awaits_at_top(body):
            body = f"async def _block_{i}() -> None:\n" + textwrap.indent(body, "    ")
        bodies.append(body)
    return "\n".join([*imports, "", *bodies, ""])


def readme_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def notebook_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    # A notebook runs its cells in one namespace, awaiting at the top: one block.
    return ["\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")]


def mypy(files: dict[str, str], tmp_path: Path) -> list[str]:
    """mypy's error lines for these files (name to code), checked together."""
    (tmp_path / "mypy.ini").write_text(CONFIG)
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    out = subprocess.run([sys.executable, "-m", "mypy", *FLAGS, *files],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"MYPYPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode in (0, 1), out.stderr + out.stdout  # 2: mypy itself failed
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_readme_and_notebooks_type_check_and_a_wrong_call_is_reported(
        tmp_path: Path) -> None:
    files = {f"readme_{i}.py": program([block]) for i, block in enumerate(readme_blocks())}
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        files[f"nb_{notebook.stem}.py"] = program(notebook_cells(notebook))
    assert len(files) >= 8
    # The public names are classes to mypy, not `object`; wrong calls are caught.
    files["probe.py"] = textwrap.dedent('''\
        from agentflow import Agent, AgentFlow, Engine, PlanValidationError, errors
        from agentflow.plans import AgentInstance

        reveal_type(AgentFlow)
        reveal_type(PlanValidationError)
        reveal_type(errors.PlanValidationError)


        async def wrong(agent: Agent, inst: AgentInstance) -> None:
            Engine(url=3)
            await agent.start(42)
            await inst.restart(upgrade="yes")
            await AgentFlow("memory://").agent("a").submit_plan("p")
        ''')
    errors = mypy(files, tmp_path)
    users = [e for e in errors if not e.startswith("probe.py")]
    assert users == [], "\n".join(users)
    probe = "\n".join(e for e in errors if e.startswith("probe.py"))
    assert '-> agentflow.plans._flow.AgentFlow"' in probe  # a class, not `object`
    assert probe.count('-> agentflow.plans._invalid.PlanValidationError"') == 2
    wrong = [e for e in errors if e.startswith("probe.py") and ": error:" in e]
    assert [int(e.split(":")[1]) for e in wrong] == [10, 11, 12, 13], probe
    assert all("[arg-type]" in e or "[call-arg]" in e for e in wrong), probe


def _lazy_and_typed(package_init: Path) -> tuple[set[str], set[str]]:
    """The names a package's ``_LAZY`` table serves and those it imports under
    ``TYPE_CHECKING``."""
    tree = ast.parse(package_init.read_text())
    lazy: set[str] = set()
    typed: set[str] = set()
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)):
            lazy = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            typed = {a.asname or a.name for n in node.body
                     if isinstance(n, ast.ImportFrom) for a in n.names}
    return lazy, typed


def test_every_lazy_name_is_typed() -> None:
    """A name added to a lazy table without its TYPE_CHECKING import would be `object`
    to type checkers again; this catches it without running mypy."""
    for init in (REPO / "agentflow" / "__init__.py", REPO / "agentflow" / "plans" / "__init__.py"):
        lazy, typed = _lazy_and_typed(init)
        assert lazy, init
        assert lazy - typed == set(), init
