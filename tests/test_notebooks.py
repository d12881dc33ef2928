"""The notebooks run from a clean state, and their key outputs are checked."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
#: The import name of each distribution a notebook may need.
IMPORT_NAMES = {"pydantic": "pydantic", "aiosqlite": "aiosqlite", "tenacity": "tenacity",
                "RestrictedPython": "RestrictedPython", "mcp": "mcp", "rich": "rich",
                "httpx2": "httpx2", "openai": "openai", "anthropic": "anthropic",
                "pydantic-ai-slim": "pydantic_ai", "psycopg": "psycopg"}


def _distribution(requirement: str) -> str:
    for stop in "[<>=!~ ;":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip()


def _provided(extras: list[str]) -> set[str]:
    """Import names available with the base install plus these extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {IMPORT_NAMES.get(_distribution(r), _distribution(r)) for r in requirements}


def _imports(nb: nbformat.NotebookNode) -> set[str]:
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_each_notebook_says_which_extras_it_needs(name: str) -> None:
    """A notebook names its extras (metadata and its first cell, for the reader); every
    package it imports comes with agentflow or those extras; and they are installed
    here, so the suite runs it as the reader would."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    extras = nb.metadata["agentflow"]["extras"]
    intro = nb.cells[0].source
    if extras:
        assert f'pip install -e ".[{",".join(extras)}]"' in intro, intro
    else:
        assert "Needs no extra" in intro, intro
    ours = {"agentflow", "sandbox", "mcp_server"}
    third_party = _imports(nb) - set(sys.stdlib_module_names) - ours
    missing = third_party - _provided(extras)
    assert not missing, f"{name} imports {sorted(missing)} without naming the extra"
    for module in third_party:
        assert importlib.util.find_spec(module) is not None, (
            f"{name} needs {module!r}: install the extras {extras}")


def run(name: str, tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            data = out.get("data", {})
            text.append(data.get("text/plain", ""))
            text.append(data.get("text/html", ""))
    return "\n".join(text)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_durable_engine_notebook(tmp_path: Path) -> None:
    text = outputs(run("01_durable_engine.ipynb", tmp_path))
    assert "kind='retry'" in text
    assert "kind='sleep'" in text
    assert "complete {'item'" in text
    assert 'class="agentflow-timeline"' in text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agent_plan_notebook(tmp_path: Path) -> None:
    text = outputs(run("02_agent_plan_approval.ipynb", tmp_path))
    assert "AF301" in text  # the import in the draft was diagnosed with its code
    assert "fix:" in text
    assert "PendingEvent(" in text
    assert "{'released': True, 'version': '2.0.0', 'run': 1}" in text
    assert 'class="agentflow-timeline"' in text
    # print in the plan: kept once, though the run replayed after the engine restarted
    assert text.count("log before &#x27;record&#x27;: run 1 of release 2.0.0") == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_model_writes_a_plan_notebook(tmp_path: Path) -> None:
    text = outputs(run("03_model_writes_a_plan.ipynb", tmp_path))
    assert "['validate_plan', 'submit_plan', 'list_plans', 'start_instance', 'get_instance']" \
        in text  # the five tools author_plan offers, not all fifteen
    assert "'AF301'" in text and "'AF201'" in text  # the draft's two mistakes, diagnosed
    assert "ok: True" in text
    assert "complete {'total': 6}" in text
    assert 'class="agentflow-timeline"' in text
