"""Text that plans or agents wrote, made safe to show a person: every character that
could restyle, hide or reorder what they read is written as an escape."""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls (ANSI escapes, carriage returns, newlines), and the zero-width and
# bidirectional marks and overrides that hide text or reorder a line.
_UNPRINTABLE = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e"
                          "\\u2060-\\u2069\\ufeff]")


def printable(text: str) -> str:
    """``text`` with those characters written as escapes (``\\x1b``, ``\\n``, ``\\u202e``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                            text)
