"""Text from plans as a terminal may show it: literally.

Step names, outputs, errors, event types and plan names come from plans, which agents
write. A terminal must show them, not obey them: Rich markup in them (``[/]``,
``[link=...]``) is not parsed, and control characters (ANSI escapes, carriage returns,
newlines) and bidirectional overrides are written as escapes, so a plan cannot crash a
listing, restyle or hide text, or fake a line such as "status: complete".
"""

from __future__ import annotations

import re

from rich.text import Text

__all__ = ["literal", "printable"]

# C0 and C1 controls, and the bidirectional marks and overrides that reorder a line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``, ``\\n``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                            text)


def literal(text: str, style: str = "") -> Text:
    """Stored text as a Rich cell or line: never parsed as markup, controls escaped."""
    return Text(printable(text), style=style)
