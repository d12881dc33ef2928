"""Text that plans or agents wrote, made safe to show a person: every character that
could restyle, hide or reorder what they read is written as an escape."""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 controls (ANSI escapes, carriage returns, newlines); the soft hyphen and the
# other invisible formatters (combining grapheme joiner, Hangul fillers, Khmer and
# Mongolian vowel marks); the zero-width and bidirectional marks and overrides, line
# and paragraph separators, invisible operators; variation selectors; interlinear
# annotation marks; and the tag characters of the U+E0000 block, which render as
# nothing yet carry text a model reads. Each could hide, restyle or reorder text.
_UNPRINTABLE = re.compile(
    "[\\x00-\\x1f\\x7f-\\x9f\\xad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5"
    "\\u180b-\\u180f\\u200b-\\u200f\\u2028-\\u202e\\u2060-\\u206f\\u3164"
    "\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff9-\\ufffb"
    "\\U000e0000-\\U000e007f\\U000e0100-\\U000e01ef]")


def printable(text: str) -> str:
    """``text`` with those characters written as escapes (``\\x1b``, ``\\n``, ``\\u202e``,
    ``\\xad``, ``\\U000e0041``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                            text)
