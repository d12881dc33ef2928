"""The markdown prompts of ``prompts/``, shipped in the wheel beside the packages."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PROMPTS_DIR", "load_prompt"]

#: ``prompts/`` next to the ``agentflow`` package: the repository root in a checkout,
#: ``site-packages`` in an installed wheel (pyproject ships it as package data).
PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


def load_prompt(name: str) -> str:
    """The text of ``prompts/<name>.md``, e.g. ``load_prompt("plan-authoring")``.

    Raises:
        FileNotFoundError: no such prompt (the message names the ones there are).
    """
    path = PROMPTS_DIR / f"{name}.md"
    if "/" in name or "\\" in name or not path.is_file():
        have = sorted(p.stem for p in PROMPTS_DIR.glob("*.md")) if PROMPTS_DIR.is_dir() else []
        raise FileNotFoundError(f"no prompt named {name!r} in {PROMPTS_DIR}; there are {have}")
    return path.read_text(encoding="utf-8")
