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


def test_the_readme_drive_snippet_runs_to_completion(tmp_path: Path) -> None:
    """The "Drive it from Python" block, run as written on the example's workflow."""
    import asyncio
    import io
    from contextlib import redirect_stdout

    from agentflow import Engine
    from agentflow.examples import greet

    readme = (REPO / "README.md").read_text()
    block = readme.split("Drive it from Python:\n\n```python\n", 1)[1].split("```", 1)[0]
    engine = Engine(f"sqlite:///{tmp_path}/readme.db")
    engine.register("greet", greet.greet)
    body = "".join(f"    {line}\n" for line in block.splitlines())
    namespace: dict[str, object] = {"engine": engine}
    exec(compile(f"async def main():\n{body}", "README.md", "exec"), namespace)
    out = io.StringIO()
    with redirect_stdout(out):
        asyncio.run(namespace["main"]())  # type: ignore[operator]
    assert out.getvalue().startswith("complete hello Ada: sent welcome mail to Ada")
