"""The operator's approval commands: ``approve``, ``reject`` and ``policy``.

``agentflow approve ID`` shows the approval request (the same record, and the same
renderer, as the MCP dialog: who waits, the params, the plan source from the wait on)
and asks before it sends; ``--yes`` skips the question, for scripts. The decision is
sent only to the very wait that was shown: if the instance moved on, was restarted or
answered meanwhile, nothing is sent. When a plan waits for several decisions at once
(a ``gather`` of two approvers), ``--step NAME`` chooses the one answered; without it
the person at the terminal picks one from the list, and a script (``--yes``, or no
terminal) gets the list and nothing is sent: the command never guesses.

``agentflow policy`` reads and sets the database's approval policy, which every front
end on that database obeys (see `agentflow.policy`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from typing import Any

from agentflow._text import printable
from agentflow.cli._db import client
from agentflow.cli._exits import EXIT_OK
from agentflow.cli._workers import no_worker_note
from agentflow.errors import InvalidArgumentError, InvalidStateError, UsageError
from agentflow.policy import OperatorPolicy, default_actor, is_human_only
from agentflow.tools._approval import ApprovalRequest, approval_records, render_approval

__all__ = ["answer", "check_decision_payload", "policy"]


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _ask(verb: str, instance_id: str) -> bool:
    """Whether the person at the terminal confirms; refuses when nobody can be asked."""
    if not sys.stdin.isatty():
        raise UsageError(f"nobody can confirm here (stdin is not a terminal), so nothing was "
                         f"sent; read the request above and pass --yes to {verb} from a "
                         f"script")
    print(f'Type "{verb}" and Enter to {verb} instance {instance_id}; anything else sends '
          "nothing: ", end="", flush=True)
    try:
        reply = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return reply.strip().lower() == verb


def answer(verb: str) -> Any:
    """The handler of ``agentflow approve`` / ``agentflow reject``."""
    async def run(args: argparse.Namespace) -> int:
        async with client(args, writes=True) as engine:
            inst = await engine.get_instance(args.id)
            row = await engine.store.get_instance(inst.id)
            assert row is not None  # get_instance found it
            records = [r for r in await approval_records(engine.store, row)
                       if r.type.casefold() == args.type.casefold()]
            if not records:
                from agentflow.cli._ops import pending_approval
                await pending_approval(inst, args.type)  # raises, saying what it waits on
                raise InvalidStateError(f"instance {args.id!r} does not wait for an approval")
            if (args.step is None and len(records) > 1 and not args.yes and not args.json
                    and sys.stdin.isatty()):
                picked = _pick(args, records)  # a person at the terminal chooses
                if picked is None:
                    print(f"nothing was sent; instance {args.id} keeps waiting",
                          file=sys.stderr)
                    return EXIT_OK
                record = picked
            else:
                record = _choose(args, records)
            width = min(shutil.get_terminal_size((80, 24)).columns, 120)
            if args.json:
                shown = record.model_dump(mode="json", exclude={"ref"})
            else:
                print(render_approval(record, width=width))
            if not args.yes and not _ask(verb, args.id):
                print(f"nothing was sent; instance {args.id} keeps waiting", file=sys.stderr)
                return EXIT_OK
            decision = {"approved": verb == "approve", "comment": args.comment or "",
                        "by": "human"}
            sent = await inst.send_event_to_wait(record.ref, record.type, decision)
            note = await no_worker_note(engine.store, inst.id) if sent else None
            if not sent:
                raise InvalidStateError(
                    f"instance {args.id!r} changed since the request was read (it moved on, "
                    f"was restarted or answered): nothing was sent. Run the command again "
                    f"to see what it waits for now")
        if args.json:
            _emit({"id": args.id, "action": verb, "ok": True, "request": shown,
                   "payload": decision,
                   **({"worker_running": False, "note": note} if note else {})})
        else:
            print(f"{'approved' if verb == 'approve' else 'rejected'} {args.id}")
        if note:
            print(f"agentflow: {note}", file=sys.stderr)
        return EXIT_OK
    return run


def _choose(args: argparse.Namespace, records: list[ApprovalRequest]) -> ApprovalRequest:
    """The open wait this command answers: the one ``--step`` names, or the only one.
    With several open and no ``--step`` it lists them and sends nothing: a person
    chooses, the command never guesses."""
    if args.step is not None:
        chosen = [r for r in records if r.step == args.step]
        if len(chosen) == 1:
            return chosen[0]
        raise InvalidStateError(
            f"instance {args.id!r} has {'several' if chosen else 'no'} open {args.type!r} "
            f"waits at step {json.dumps(printable(args.step))}; nothing was sent. "
            f"{_listed(args, records)}")
    if len(records) == 1:
        return records[0]
    raise InvalidStateError(
        f"instance {args.id!r} waits for {len(records)} {args.type!r} decisions at once; "
        f"nothing was sent. Choose the one you answer with --step. {_listed(args, records)}")


def _pick(args: argparse.Namespace, records: list[ApprovalRequest]) -> ApprovalRequest | None:
    """Several decisions are open at once: list them and let the person at the terminal
    type the one they answer (its number or its step name); anything else, nothing."""
    print(f"Instance {args.id} waits for {len(records)} {args.type!r} decisions at once:")
    for i, r in enumerate(records, 1):
        print(f"  {i}. step {json.dumps(printable(r.step), ensure_ascii=False)} (until "
              f"{r.deadline.isoformat(timespec='seconds')})")
    print("Type the number or the step name of the one you answer; anything else sends "
          "nothing: ", end="", flush=True)
    try:
        reply = sys.stdin.readline().strip()
    except KeyboardInterrupt:
        return None
    for i, r in enumerate(records, 1):
        if reply in (str(i), r.step):
            return r
    return None


def _listed(args: argparse.Namespace, records: list[ApprovalRequest]) -> str:
    return "Its open waits:\n" + "\n".join(
        f"  --step {json.dumps(printable(r.step), ensure_ascii=False)}  (until "
        f"{r.deadline.isoformat(timespec='seconds')}): agentflow {args.verb} {args.id} "
        f"--step {shlex.quote(r.step)}" for r in records)


def check_decision_payload(event_type: str, payload: Any, human_only: frozenset[str]) -> None:
    """A decision sent by hand must say yes or no without doubt: for a human-only type,
    ``approved`` is a JSON boolean (``"yes"``, ``1``, ``"on"`` are refused), and an
    ``approval`` must carry it.

    Raises:
        InvalidArgumentError: otherwise (nothing is sent).
    """
    if not is_human_only(event_type, human_only):
        return
    has = isinstance(payload, dict) and "approved" in payload
    if (has and not isinstance(payload["approved"], bool)) or (
            not has and is_human_only(event_type, {"approval"})):
        raise InvalidArgumentError(
            f"a {event_type!r} event is a person's decision: its payload must be a JSON "
            f'object whose "approved" is true or false (not {json.dumps(payload)[:60]}). '
            f"Nothing was sent; `agentflow approve ID` / `agentflow reject ID` send one")


async def policy(args: argparse.Namespace) -> int:
    """``agentflow policy [show | human-only add|remove TYPE | approvals MODE]``."""
    async with client(args, writes=args.action != "show") as engine:
        store = OperatorPolicy(engine.store)
        by = default_actor("cli")
        if args.action == "human-only":
            if args.change == "add":
                await store.add_human_only(args.type, by=by)
            else:
                await store.remove_human_only(args.type, by=by)
        elif args.action == "approvals":
            await store.set_approvals(args.mode, by=by)
        current = await store.read()
        history = await store.history()
    if args.json:
        _emit({"human_only": sorted(current.human_only), "approvals": current.approvals,
               "changes": [h.model_dump(mode="json") for h in history]})
        return EXIT_OK
    print(f"human-only event types: {', '.join(sorted(current.human_only))}")
    print(f"approvals: {current.approvals}"
          + (" (the approve tool never asks through the client; people answer with "
             "agentflow approve/reject)" if current.approvals == "operator-only" else
             " (the approve tool asks through the client's elicitation, which whatever the "
             "client runs answers, its hooks included)"))
    print("every front end on this database obeys this policy")
    return EXIT_OK


def add_parsers(add: Any, with_json: Any) -> None:
    """Register ``approve``, ``reject`` and ``policy`` on the CLI's parser."""
    for verb in ("approve", "reject"):
        p = with_json(add(verb, f"show the approval an instance waits for now and {verb} it "
                                "as a person; nothing is sent if it does not wait for one"))
        p.add_argument("id")
        p.add_argument("--comment", default="")
        p.add_argument("--type", default="approval",
                       help="the event type the instance must wait for (default approval)")
        p.add_argument("--step", default=None, metavar="NAME",
                       help="the wait step to answer, when the instance waits for several "
                            "decisions at once (they are listed when it does)")
        p.add_argument("--yes", action="store_true",
                       help=f"{verb} without asking (for scripts; the request is still "
                            "printed)")
        p.set_defaults(handler=answer(verb), verb=verb)

    p = with_json(add("policy", "show or set the approval policy every front end on this "
                                "database obeys"))
    sub = p.add_subparsers(dest="action", metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        a: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        # Also after the action's own arguments (`policy approvals elicit --db URL`).
        a.add_argument("--db", default=argparse.SUPPRESS, metavar="URL",
                       help="database URL")
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print JSON for scripts")
        return a

    action("show", "show the policy (the default)")
    human = action("human-only", "add or remove an event type only a person may send "
                                 "('approval' always is)")
    human.add_argument("change", choices=["add", "remove"])
    human.add_argument("type")
    approvals = action("approvals", "elicit (default): the approve tool asks through the "
                                    "client; operator-only: it never does")
    approvals.add_argument("mode", choices=["elicit", "operator-only"])
    p.set_defaults(handler=policy, action="show")
