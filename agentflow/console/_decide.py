"""Decisions: a person approves or rejects, from the console (signed in) or through a
signed approval link (the link is the credential). Either way the decision goes to the
exact wait the person was shown, or nowhere."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agentflow.console import _data
from agentflow.console._auth import LinkClaims, Session
from agentflow.console._web import Console, field_of

__all__ = ["decide", "link_decide", "link_page", "mint_link"]


async def _deliver(console: Console, instance_id: str, seen_ref: str, approved: bool,
                   comment: str) -> tuple[bool, str]:
    """Send a person's decision to the wait they saw (``seen_ref``), atomically: if the
    instance no longer waits at exactly that wait, nothing is sent. The payload is the
    one every operator surface sends: ``{"approved", "comment", "by": "human"}``.

    Returns:
        Whether it was delivered, and what to tell the person.
    """
    flow = console.flow
    row = await flow.engine.store.get_instance(instance_id)
    view = (await _data.approval_view(flow, row, await console.human_only())
            if row is not None else None)
    if view is None:
        return False, (f"Instance {instance_id!r} does not wait for an approval now; "
                       "nothing was sent.")
    if view.request.ref != seen_ref:
        return False, _STALE
    payload = {"approved": approved, "comment": comment[:2000], "by": "human"}
    inst = await flow.engine.get_instance(instance_id)
    if not await inst.send_event_to_wait(seen_ref, view.request.type, payload):
        return False, _STALE
    return True, "delivered"


_STALE = ("The instance changed since this approval was shown (it was answered, "
          "restarted or moved on); nothing was sent.")


async def decide(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    verdict = field_of(form, "decision")
    if verdict not in ("approve", "reject"):
        return console.message(request, session, "No decision",
                               "Choose Approve or Reject; nothing was sent.", status_code=400)
    ref = field_of(form, "ref")
    delivered, text = await _deliver(console, instance_id, ref, verdict == "approve",
                                     field_of(form, "comment"))
    if not delivered:
        return console.message(request, session, "Nothing was sent", text, status_code=409,
                               back=f"/instances/{instance_id}")
    await _data.record_decision(console.flow, instance_id, ref,
                                by=f"operator {session.name} via console",
                                approved=verdict == "approve",
                                comment=field_of(form, "comment"), via="console")
    notice = "approved" if verdict == "approve" else "rejected"
    return RedirectResponse(f"/instances/{instance_id}?{urlencode({'notice': notice})}", 303)


# -- approval links ----------------------------------------------------------------------
async def mint_link(request: Request, console: Console, session: Session) -> Response:
    instance_id = request.path_params["instance_id"]
    form = await request.form()
    ref = field_of(form, "ref")
    row = await console.flow.engine.store.get_instance(instance_id)
    view = (await _data.approval_view(console.flow, row, await console.human_only())
            if row is not None else None)
    if view is None or view.request.ref != ref:
        return console.message(request, session, "No link made",
                               "This instance no longer waits for that approval.",
                               status_code=409, back=f"/instances/{instance_id}")
    token = (await console.signer()).new_link(instance_id, ref,
                                              lifetime=console.config.link_seconds,
                                              by=session.name)
    base = (console.config.public_url or str(request.base_url)).rstrip("/")
    expires = datetime.fromtimestamp(
        (await console.signer()).link(token).expires, UTC)  # type: ignore[union-attr]
    return console.page(request, "minted.html", session, instance_id=instance_id,
                        url=f"{base}/link/{token}",
                        expires=expires.strftime("%Y-%m-%d %H:%M UTC"))


async def _link_state(console: Console, token: str
                      ) -> tuple[LinkClaims | None, _data.ApprovalView | None, str | None]:
    """The link's claims and the approval it answers, or why it cannot be used."""
    claims = (await console.signer()).link(token)
    if claims is None:
        return None, None, ("This approval link is not valid: it was altered, cut short, "
                            "or not made by this console. Nothing was sent.")
    if claims.expires < datetime.now(UTC).timestamp():
        return claims, None, "This approval link has expired. Nothing was sent."
    if await _data.link_used(console.flow.engine.store, claims.nonce, claims.expires):
        return claims, None, ("This approval link was already used; a link answers once. "
                              "Nothing was sent.")
    row = await console.flow.engine.store.get_instance(claims.instance_id)
    view = (await _data.approval_view(console.flow, row, await console.human_only())
            if row is not None else None)
    if view is None and not claims.ref:  # a plan's link names the instance, not a wait
        return claims, None, ("The instance this link was made for does not wait for an "
                              "approval now (not yet, or no longer). Nothing was sent.")
    if view is None or (claims.ref and view.request.ref != claims.ref):
        return claims, None, ("The approval this link was made for is no longer waiting "
                              "(it was answered, restarted or moved on). Nothing was sent.")
    return claims, view, None


async def link_page(request: Request) -> Response:
    console: Console = request.app.state.console
    token = request.path_params["token"]
    claims, view, problem = await _link_state(console, token)
    if problem is not None or claims is None or view is None:
        return console.message(request, None, "Approval link refused", problem or "",
                               status_code=410 if claims else 400)
    expires = datetime.fromtimestamp(claims.expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return console.page(request, "link.html", None, view=view, claims=claims, token=token,
                        expires=expires)


async def link_decide(request: Request) -> Response:
    """A decision through a link. The link's token is the credential (it is secret,
    and a cross-site form cannot know it), so no session or CSRF cookie is asked."""
    console: Console = request.app.state.console
    token = request.path_params["token"]
    claims, view, problem = await _link_state(console, token)
    if problem is not None or claims is None or view is None:
        return console.message(request, None, "Approval link refused", problem or "",
                               status_code=410 if claims else 400)
    form = await request.form()
    verdict = field_of(form, "decision")
    if verdict not in ("approve", "reject"):
        return console.message(request, None, "No decision",
                               "Choose Approve or Reject; nothing was sent.", status_code=400)
    store = console.flow.engine.store
    now = time.time()  # links expire by the wall clock (`Signer.new_link`)
    ref = claims.ref or field_of(form, "ref")  # a plan's link: the wait the person saw
    # Claimed before the decision goes out, so two uses at once cannot both pass; given
    # back if nothing was delivered. Expired records go on the way.
    await _data.prune_used_links(store, now)
    if not await _data.claim_link(store, claims.nonce, claims.expires, claims.instance_id,
                                  now):
        return console.message(request, None, "Approval link refused",
                               "This approval link was already used; a link answers "
                               "once. Nothing was sent.", status_code=410)
    delivered, text = await _deliver(console, claims.instance_id, ref,
                                     verdict == "approve", field_of(form, "comment"))
    if not delivered:
        await _data.release_link(store, claims.nonce, claims.expires)
        return console.message(request, None, "Nothing was sent", text, status_code=409)
    await _data.record_decision(console.flow, claims.instance_id, ref,
                                by=f"{field_of(form, 'name')[:100] or 'someone'} (through "
                                   f"an approval link from {claims.by})",
                                approved=verdict == "approve",
                                comment=field_of(form, "comment"), via="link")
    word = "approved" if verdict == "approve" else "rejected"
    return console.message(request, None, "Thank you",
                           f"You {word} it; the plan received your decision.",
                           status_code=200, kind="notice")
