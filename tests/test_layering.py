"""Layering (DESIGN.md section 1) and private reaches, checked on the package sources.

The rules, over every module of ``agentflow``, ``sandbox`` and ``mcp_server`` (tests
aside):

1. No cross-module private reach. A name that starts with one underscore is private:
   - ``from pkg.mod import _name`` is allowed only from a module of the importing
     module's own package (the private modules of one package share their names);
   - ``obj._attr`` is allowed only on ``self`` or ``cls``, or when this very module
     defines ``_attr`` (a function, a class, a class attribute or a ``self._attr``
     assignment): then ``obj`` is one of the module's own objects. Reading another
     module's private attribute (``pool._workers`` in a sibling module included) is a
     reach: that module must offer a public operation instead. (The check reads no
     types: a module that defines an ``_attr`` of its own may also read another
     object's ``_attr`` of the same name unnoticed; keep private names distinct.)
   A few standard-library and third-party names that merely start with an underscore
   are allowed, each with its reason, in `ALLOWED_ATTRIBUTES`.
2. ``mcp_server`` imports agentflow's public API only: no module path with a private
   component (``agentflow._engine``, ``agentflow.tools._handlers``), and nothing
   imports ``mcp_server``.
3. ``openai`` and ``anthropic`` are imported only inside their adapter modules.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agentflow", "sandbox", "mcp_server")

#: ``name: reason``: underscore attributes that are public API of someone else.
ALLOWED_ATTRIBUTES = {
    "_exit": "os._exit, the documented way to leave a forked child",
    "_Environ": "os._Environ, the type of os.environ",
    "_replace": "namedtuple._replace (urllib's SplitResult), public API of namedtuples",
    "_lowlevel_server": "MCPServer's lowlevel server: MCPServer offers no public way to "
    "serve resources/subscribe (2025-11-25), a spec method extensions may not bind "
    "(mcp_server/_updates.py)",
}
#: Modules that may import a vendor SDK, by SDK.
ADAPTERS = {
    "openai": {"agentflow/tools/openai.py"},
    "anthropic": {"agentflow/tools/anthropic.py"},
}


@dataclass(frozen=True)
class Module:
    path: str  # relative, with slashes
    name: str  # dotted
    package: str  # dotted: the package the module is in
    tree: ast.Module


def _modules() -> list[Module]:
    found = []
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            rel = file.relative_to(ROOT)
            parts = list(rel.with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts = parts[:-1]
            name = ".".join(parts)
            found.append(Module(rel.as_posix(), name,
                                name if is_init else name.rpartition(".")[0],
                                ast.parse(file.read_text(encoding="utf-8"), str(rel))))
    return found


MODULES = _modules()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_here(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def private_reaches(module: Module) -> list[str]:
    """Every cross-module private reach in one module, as ``path:line: what``."""
    found = []
    defined = _defined_here(module.tree)
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            source_package = node.module.rpartition(".")[0]
            own = module.package in (node.module, source_package)
            for alias in node.names:
                if _private(alias.name) and not own:
                    found.append(f"{module.path}:{node.lineno}: from {node.module} "
                                 f"import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr in defined or node.attr in ALLOWED_ATTRIBUTES:
                continue
            found.append(f"{module.path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_every_allowance_is_still_needed() -> None:
    """An allowance nothing uses any more is removed, so that the list stays short."""
    used = {node.attr for m in MODULES for node in ast.walk(m.tree)
            if isinstance(node, ast.Attribute)}
    assert set(ALLOWED_ATTRIBUTES) - used == set()


def _imports(module: Module) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
            # ``from agentflow import _engine`` names a module too
            names += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                      if _private(a.name)]
    return names


def test_the_rules_see_what_they_must() -> None:
    """The checker itself: each rule fires on a reach of its kind and not on the
    allowed forms (a checker that finds nothing proves nothing)."""
    source = (
        "from agentflow._engine import _Hidden\n"      # another package's private name
        "from agentflow.plans._flow import _Own\n"     # same package: allowed
        "import os\n"
        "class A:\n"
        "    def __init__(self, pool):\n"
        "        self._mine = 1\n"
        "        pool._workers.clear()\n"              # another module's private attribute
        "        other = A(pool)\n"
        "        other._mine = 2\n"                    # this module's own attribute
        "        os._exit(0)\n"                        # allowed, with a reason
        "        self._engine.store\n"                 # self: allowed
        "        pool.__class__\n"                     # dunder: not private
    )
    module = Module("agentflow/plans/_probe.py", "agentflow.plans._probe", "agentflow.plans",
                    ast.parse(source))
    found = private_reaches(module)
    assert [f.split(": ", 1)[1] for f in found] == [
        "from agentflow._engine import _Hidden", "pool._workers"]


@pytest.mark.parametrize("module", MODULES, ids=[m.path for m in MODULES])
def test_no_cross_module_private_reach(module: Module) -> None:
    assert private_reaches(module) == [], (
        "a module reaches into another module's private names; give that module a "
        "public operation instead (see the rules at the top of tests/test_layering.py)")


def test_mcp_server_imports_only_the_public_api() -> None:
    bad = []
    for module in MODULES:
        if not module.name.startswith("mcp_server"):
            continue
        for line, name in _imports(module):
            parts = name.split(".")
            if parts[0] == "agentflow" and any(_private(p) for p in parts):
                bad.append(f"{module.path}:{line}: {name}")
    assert bad == []


#: Modules that compose the MCP server into a larger application, with the reason.
MCP_COMPOSERS = {
    "agentflow/cli/_serve.py": "`agentflow serve --mcp` serves the MCP app beside the "
    "console on one port; it imports mcp_server's public face, and only when --mcp is given",
}


def test_nothing_imports_mcp_server() -> None:
    bad = [f"{m.path}:{line}: {name}" for m in MODULES if not m.name.startswith("mcp_server")
           for line, name in _imports(m) if name.split(".")[0] == "mcp_server"
           and m.path not in MCP_COMPOSERS]
    assert bad == []


def test_vendor_sdks_are_imported_only_in_their_adapters() -> None:
    bad = []
    for module in MODULES:
        for line, name in _imports(module):
            root = name.split(".")[0]
            if root in ADAPTERS and module.path not in ADAPTERS[root]:
                bad.append(f"{module.path}:{line}: {name}")
    assert bad == []


def test_at_run_time_nothing_imports_mcp_server_or_the_model_sdks() -> None:
    """Import every agentflow module in a fresh interpreter (the optional pydantic_ai
    adapter aside): none of them loads mcp_server, openai or anthropic."""
    names = [m.name for m in MODULES if m.name.split(".")[0] == "agentflow"
             and m.name != "agentflow.tools.pydantic_ai" and not m.name.endswith("__main__")]
    code = ("import importlib, json, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    loaded = set(json.loads(out.stdout))
    assert not loaded & {"mcp_server", "openai", "anthropic"}

