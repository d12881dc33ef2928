"""Text from plans as a terminal may show it: literally.

Step names, outputs, errors, event types and plan names come from plans, which agents
write. A terminal must show them, not obey them: Rich markup in them (``[/]``,
``[link=...]``) is not parsed, and control characters (ANSI escapes, carriage returns,
newlines) and bidirectional overrides are written as escapes, so a plan cannot crash a
listing, restyle or hide text, or fake a line such as "status: complete".
"""

from __future__ import annotations

from rich.text import Text

from agentflow._text import printable

__all__ = ["literal", "printable"]


def literal(text: str, style: str = "") -> Text:
    """Stored text as a Rich cell or line: never parsed as markup, controls escaped."""
    return Text(printable(text), style=style)
