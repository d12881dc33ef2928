"""The README's snippets are the files the tests run."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_shows_the_example_file_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    example = (REPO / "agentflow" / "examples" / "greet.py").read_text()
    body = example.split('"""', 2)[2].lstrip("\n")  # without the module docstring
    assert f"```python\n{body}```" in readme


def test_readme_setup_commands_match_ci() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -e . && agentflow demo" in readme
    test_command = 'pip install -e ".[dev]" && python -m pytest'
    assert test_command in readme
    assert test_command in ci
