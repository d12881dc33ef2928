"""An approval request as a record, and the one way every surface renders it.

The record (`ApprovalRequest`) is read from the store, never taken from the agent: who
waits (agent, instance, plan and version), the waiting step and event type, the
deadline, the params the instance runs with, and the plan source from the wait onward,
so a person sees what will run once they approve. The agent's ``note`` is the one thing
the agent supplies, and it is shown as the agent's words.

`render_approval` is the only renderer: the MCP elicitation dialog, ``agentflow
approve`` and any later surface print its text. Its rules:

- Everything the plan or the model chose (ids, names, the step, params, source, the
  note) is shown as a value, never spliced into one of the dialog's own sentences:
  short values as JSON strings after a label, long ones as a block whose every line
  starts with ``> ``.
- Every value goes through `agentflow._text.printable` (control, bidi, zero-width, tag
  characters, soft hyphen become visible escapes).
- Lines are hard-wrapped to the width (80 by default), continuation lines keep their
  ``> ``, so a terminal's own wrapping never makes a value look like dialog text.
- Blocks are capped, and the header (agent, instance, plan) comes first and is at most
  a few lines, so it stays on an 80x24 screen whatever the plan or the note hold.
"""

from __future__ import annotations

import ast
import json
import textwrap
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from agentflow._instance import OpenWait, instance_status, open_waits, wait_ref
from agentflow._text import printable
from agentflow.plans.dispatch import ENVELOPE_KEY
from agentflow.store import InstanceRow, Store

__all__ = [
    "MAX_SOURCE_LINES",
    "ApprovalRequest",
    "approval_record",
    "approval_records",
    "render_approval",
    "source_from_wait",
]

#: The width of the dialog's text: 80 columns, less what a client indents it by.
DIALOG_WIDTH = 76
#: How many plan lines a record keeps from the wait onward.
MAX_SOURCE_LINES = 200
#: How many characters a record keeps of the params' JSON.
MAX_PARAMS_CHARS = 4000


class ApprovalRequest(BaseModel):
    """What a person is asked to decide, read from the store.

    Attributes:
        agent_id: the agent whose plan waits.
        instance_id: the waiting instance.
        plan: the plan's name.
        version: the plan version the instance runs.
        type: the human-only event type it waits for.
        step: the name of the waiting ``wait_for_event`` step.
        deadline: when the wait times out (UTC).
        params: the instance's params (what the plan reads as ``event.payload``), as
            JSON text, capped at `MAX_PARAMS_CHARS`.
        source: the plan source from the line after the waiting step's call onward
            (capped at `MAX_SOURCE_LINES` lines): what runs once a person decides, or
            the whole plan when that call is not found.
        source_line: the plan line ``source`` starts at (1-based).
        ref: names this very wait of this run; it changes when the instance is
            restarted, paused, resumed or woken, so an answer given to an older
            question is stale. For matching answers, not for people.
        note: the agent's words for the person (unverified): the note the plan gave
            with its wait (``wait_for_event(..., note=...)``), and the one the agent
            gave when it asked (the ``approve`` tool's ``note``), one after the other.
        plan_source: the whole plan. What runs once approved may call functions the
            plan defines anywhere (a helper above ``run``, a lambda bound before the
            wait): the full record shows them all, marking where the run resumes.
    """

    model_config = ConfigDict(frozen=True)

    agent_id: str
    instance_id: str
    plan: str
    version: str
    type: str
    step: str
    deadline: datetime
    params: str = "null"
    source: str = ""
    source_line: int = 1
    ref: str = ""
    note: str = ""
    plan_source: str = ""

    def message(self) -> str:
        """The elicitation's text: `render_approval` in its compact form, 76 columns
        wide (a client indents a dialog's text; Claude Code by two columns), so that it
        stays unwrapped on an 80-column terminal.

        Deterministic for a given record and day, as the MCP resolver form needs: a
        client may be shown the same question twice.
        """
        return render_approval(self, width=DIALOG_WIDTH, compact=True)


async def approval_record(store: Store, row: InstanceRow, note: str = "",
                          wait: OpenWait | None = None) -> ApprovalRequest | None:
    """The record of what ``row`` waits for (``wait``, one of `approval_records`'s, or
    by default its first event wait), read from the store, or None when it does not
    wait for an event. An agent's plan shows its agent, plan, version, params and
    source; a trusted workflow (registered in code) shows its workflow name and params.
    """
    if wait is None:
        first = instance_status(row).waiting_on
        ref = wait_ref(row)
        wait = next((o for o in open_waits(row) if o.ref == ref), None)
        if first is None or wait is None:
            return None
    w, ref = wait.wait, wait.ref
    if w.type is None:
        return None
    payload = json.loads(row.payload)
    meta = payload.get(ENVELOPE_KEY) if isinstance(payload, dict) else None
    if isinstance(meta, dict) and row.scope:
        plan, version = str(meta.get("plan", "")), str(meta.get("version", ""))
        params = payload.get("params")
        stored = await store.get_plan_version(row.scope, plan, version)
        whole = stored.source if stored else ""
        source, line = source_from_wait(whole, w.step)
    else:  # a trusted workflow: its code is the host's, not stored
        plan, version, params = row.workflow, "", payload
        source, line = "# a workflow registered in the host's code (not stored)", 1
        whole = source
    # The plan's note, given with its wait, and the note an agent adds when it asks
    # (the approve tool): both are the agent's words, shown together.
    notes = [n for n in dict.fromkeys((w.note or "", note)) if n]
    return ApprovalRequest(agent_id=row.scope or "", instance_id=row.id, plan=plan,
                           version=version, type=w.type, step=w.step, deadline=w.until,
                           params=params_text(params), source=source, source_line=line,
                           ref=ref, note="\n".join(notes), plan_source=whole)


async def approval_records(store: Store, row: InstanceRow, note: str = ""
                           ) -> list[ApprovalRequest]:
    """A record for every event wait ``row`` is parked on (a ``gather`` of two approvals
    parks on both), earliest deadline first; a person chooses which one they answer."""
    records = []
    for wait in open_waits(row):
        record = await approval_record(store, row, note, wait)
        if record is not None:
            records.append(record)
    return records


def source_from_wait(source: str, step: str) -> tuple[str, int]:
    """The plan source that runs after the ``wait_for_event`` call named ``step`` (from
    the line after the call onward), and the line it starts at. Falls back to the whole
    source when no such call is found (an f-string name, say): showing more is safe,
    showing less is not."""
    lines = source.splitlines()
    start = 1
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "wait_for_event" and node.args
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value == step):
                start = (node.end_lineno or node.lineno) + 1
                break
    kept = lines[start - 1:start - 1 + MAX_SOURCE_LINES]
    rest = len(lines) - (start - 1) - len(kept)
    if rest > 0:
        kept.append(f"# ... {rest} more lines")
    return "\n".join(kept), start


def params_text(params: Any, *, longest: int = 200) -> str:
    """The params as compact JSON, capped at `MAX_PARAMS_CHARS`. A string longer than
    ``longest`` is shortened first, saying by how much: a long value must not push the
    keys after it (the payee after a long memo) out of what a person reads."""
    text = json.dumps(_shorten(params, longest), ensure_ascii=False,
                      separators=(", ", ": "), sort_keys=True)
    if len(text) > MAX_PARAMS_CHARS:
        text = text[:MAX_PARAMS_CHARS] + f" ... ({len(text) - MAX_PARAMS_CHARS} more chars)"
    return text


def _shorten(value: Any, longest: int, depth: int = 0, *, say: bool = True) -> Any:
    if isinstance(value, str) and len(value) > longest:
        return (f"{value[:longest]}… ({len(value):,} characters in all)" if say
                else value[:max(longest - 1, 1)] + "…")
    if depth > 50:
        return value
    if isinstance(value, dict):
        return {k: _shorten(v, longest, depth + 1, say=say) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, longest, depth + 1, say=say) for v in value]
    return value


def _compact_params(text: str, room: int) -> str:
    """The record's params on one line of ``room`` characters: every key of an object
    keeps a share of the line (short values whole, the rest split what is left), so
    none is pushed out by a long value before it."""
    try:
        params = json.loads(text)
    except ValueError:  # capped: as the record has it
        params = None
    if isinstance(params, dict) and params and len(printable(text)) > room:
        keys = sorted(params)
        names = {k: k if k.isidentifier() else json.dumps(k, ensure_ascii=False)
                 for k in keys}
        frame = sum(len(names[k]) + 3 for k in keys)
        left, shares = max(room - frame, 8 * len(keys)), {}
        sizes = {k: len(json.dumps(params[k], ensure_ascii=False)) for k in keys}
        for n, k in enumerate(sorted(keys, key=sizes.__getitem__)):
            shares[k] = min(sizes[k], left // (len(keys) - n))
            left -= shares[k]
        text = ", ".join(f"{names[k]}=" + json.dumps(
            _shorten(params[k], max(shares[k] - 2, 4), say=False), ensure_ascii=False)
            for k in keys)
    text = printable(text)
    return text if len(text) <= room else text[:room - 2] + " …"


# -- rendering ------------------------------------------------------------------------

def _value(text: str, room: int) -> str:
    """A short value shown after a label: a JSON string, escaped, cut to ``room``."""
    shown = json.dumps(printable(text), ensure_ascii=False)
    if len(shown) > room:
        shown = shown[:max(room - 2, 1)] + '…"'
    return shown


def _wrap(line: str, width: int) -> list[str]:
    """``line`` in pieces of at most ``width`` characters, broken at spaces where it
    can be and inside a word where it must (never empty; a line's own indentation is
    kept)."""
    return textwrap.wrap(line, max(width, 1), break_on_hyphens=False,
                         replace_whitespace=False) or [""]


def quoted_block(text: str, *, width: int = 80, max_lines: int | None = None,
                 more: str = "") -> list[str]:
    """``text`` as lines behind ``> ``, escaped and hard-wrapped to ``width``.

    Args:
        text: what the plan or the model wrote.
        width: the screen width; no returned line is longer.
        max_lines: keep at most this many lines (the last says how many were left out).
        more: what the "left out" line adds (e.g. where to see everything); without
            it, the last kept line ends with " …" instead.
    """
    out: list[str] = []
    for line in text.splitlines() or [""]:
        out += [f"> {piece}" for piece in _wrap(printable(line), width - 2)]
    if max_lines is not None and len(out) > max_lines:
        left = len(out) - (max_lines - 1)
        if more and max_lines >= 3:
            out = [*out[:max_lines - 1], f"> [... {left} more lines{more}]"[:width]]
        else:  # no line of its own to spare: the last kept line says it goes on
            kept = out[:max(max_lines, 1)]
            kept[-1] = kept[-1][:width - 2] + " …"
            out = kept
    return out


def deadline_words(deadline: datetime, now: datetime | None = None) -> str:
    """The deadline as a person reads it: local time and date in words, and roughly how
    far off (coarse on purpose: the text must not change while the person reads)."""
    local = deadline.astimezone()
    when = local.strftime("%A %d %B %Y at %H:%M ") + (local.tzname() or "local time")
    seconds = (deadline - (now or datetime.now(UTC))).total_seconds()
    if seconds <= 0:
        far = "already passed"
    elif seconds >= 2 * 86400:
        far = f"in about {round(seconds / 86400)} days"
    elif seconds >= 2 * 3600:
        far = f"in about {round(seconds / 3600)} hours"
    else:
        far = "in less than 2 hours"
    return f"{when} ({far})"


def render_approval(request: ApprovalRequest, *, width: int = 80, compact: bool = False,
                    now: datetime | None = None) -> str:
    """The text every surface shows for ``request``.

    Args:
        request: the record.
        width: the screen width (at least 40); no line is longer.
        compact: for a dialog (elicitation): at most twelve lines, so that the whole
            fits an 80x24 screen with the client's form below it. Otherwise (the CLI)
            the blocks are longer.
        now: the time the relative deadline is measured from (default: now).

    Returns:
        Lines joined with ``\\n``; the header (agent, instance, plan) comes first.
    """
    width = max(width, 40)
    room = width - 12
    numbered = "\n".join(f"{request.source_line + i:>3} {line}"
                         for i, line in enumerate(request.source.splitlines()))
    runs = f"Runs once approved (plan lines from {request.source_line}):"
    if compact:
        # A dialog: the client's own title says it asks for input, and its form takes
        # about ten rows of an 80x24 screen, so the record takes at most twelve: the
        # header first (agent, instance, plan), the params as a labelled value, three
        # lines of the code that runs and one of the agent's note.
        agent = _value(request.agent_id, 24)
        params = _compact_params(request.params, room)
        lines = [
            f"  agent     {agent}  instance {_value(request.instance_id, room - len(agent) - 11)}",
            f"  plan      {_value(request.plan, room - 40)} version {request.version[:12]}"
            f"  event type {_value(request.type, 14)}",
            f"  step      {_value(request.step, room)}",
            f"  deadline  {deadline_words(request.deadline, now)}",
            f"  params    {params}",
            # Where to see everything, in words that fit 76 columns whatever the id's
            # length (the id is in the header).
            f"Runs once approved, from line {request.source_line} (all: `agentflow "
            f"approve` and the id):",
            *quoted_block(numbered, width=width, max_lines=3),
        ]
        if request.note:
            lines.append("The agent's note (its own words, not verified):")
            lines += quoted_block(request.note, width=width, max_lines=1)
        lines.append("Choose approve or reject. Decline or close: nothing is sent, it waits.")
        return "\n".join(line[:width] for line in lines)
    lines = [
        "A plan waits for a person to approve or reject it."[:width],
        f"  agent     {_value(request.agent_id, room)}",
        f"  instance  {_value(request.instance_id, room)}",
        f"  plan      {_value(request.plan, room - 22)} version {request.version[:12]}",
        f"  step      {_value(request.step, room - 34)} event type "
        f"{_value(request.type, 22)}"[:width],
        f"  deadline  {deadline_words(request.deadline, now)}"[:width],
        "Params (JSON):",
        *quoted_block(request.params, width=width),
    ]
    if request.plan_source:
        # Everything: what runs once approved may call any function the plan defines.
        lines.append(f"The plan; the run resumes at line {request.source_line} (marked >>), "
                     f"and what runs from there may call anything defined above:"[:width])
        lines += quoted_block("\n".join(
            f"{'>>' if n == request.source_line else '  '}{n:>4} {line}"
            for n, line in enumerate(request.plan_source.splitlines(), 1)), width=width)
    else:
        lines += [runs[:width], *quoted_block(numbered, width=width)]
    if request.note:
        lines.append("The agent's note (its own words, not verified):")
        lines += quoted_block(request.note, width=width)
    lines.append("Approve or reject. Nothing is sent until you choose.")
    return "\n".join(line[:width] for line in lines)
