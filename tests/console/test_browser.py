"""The console in a real browser (Debian's Chromium, driven by Playwright) against a
real ``agentflow serve`` process. The screenshots in docs/ come from these tests."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agentflow import AgentFlow
from tests.console.conftest import READER, Served, screenshot_path, sign_in
from tests.console.plans import APPROVAL, FAILING, HOSTILE, HOSTILE_STEP, LINKING

WAIT_MS = 60_000


async def start_waiting(flow: AgentFlow, source: str, params: Any, agent: str = "release-bot",
                        plan: str = "release-notes") -> str:
    a = flow.agent(agent)
    await a.submit_plan(plan, source)
    inst = await a.start(plan, params=params)
    status = await a.wait(inst.id, timeout=60)  # the server's worker runs it
    assert status.status == "waiting", status
    return inst.id


async def test_approve_from_the_inbox_and_watch_it_complete(browser: Any,
                                                            served: Served) -> None:
    instance_id = await start_waiting(served.flow, APPROVAL, {"repo": "<agentflow>"})
    page = await sign_in(browser, served)
    await page.screenshot(path=screenshot_path("console-instances.png"), full_page=True)
    await page.goto(f"{served.url}/approvals")
    card = page.locator(f"section.approval[data-instance='{instance_id}']")
    await card.wait_for()
    text = await card.inner_text()
    # The approval record: who asks, which plan and version, the waiting step, the
    # params (escaped), and the source that runs after the wait.
    for expected in ("release-bot", "release-notes", "approval", '"repo": "<agentflow>"',
                     'decision["payload"]["approved"]', "post it"):
        assert expected in text, expected
    await card.locator("textarea[name=comment]").fill("ship it")
    await page.screenshot(path=screenshot_path("console-approvals.png"), full_page=True)
    await card.locator("button.approve").click()
    await page.wait_for_url(re.compile(f"/instances/{instance_id}"))
    # From here on the page must update itself: mark this document, then wait for
    # the status to turn complete, and check it is still the same document.
    await page.evaluate("window.__same_document = true")
    await page.locator("#status", has_text="complete").wait_for(timeout=WAIT_MS)
    assert await page.evaluate("window.__same_document === true")
    output = await page.locator("#output").inner_text()
    assert '"status": "posted"' in output and '"by": "human"' in output
    decisions = await page.locator("text=approved by operator alice via console").count()
    assert decisions == 1
    await page.screenshot(path=screenshot_path("console-instance.png"), full_page=True)


async def test_an_approval_link_works_once(browser: Any, served: Served) -> None:
    instance_id = await start_waiting(served.flow, APPROVAL, {"repo": "r"})
    page = await sign_in(browser, served)
    await page.goto(f"{served.url}/approvals")
    await page.click("text=Make an approval link")
    link = await page.locator("#link").input_value()
    assert link.startswith(f"{served.url}/link/")

    stranger = await (await browser.new_context()).new_page()  # no session: the link is enough
    await stranger.goto(link)
    assert "release-bot" in await stranger.inner_text("main")
    await stranger.fill("input[name=name]", "Dana <i>")
    await stranger.fill("textarea[name=comment]", "fine by me")
    await stranger.click("button.approve")
    await stranger.locator("text=the plan received your decision").wait_for()
    status = await served.flow.agent("release-bot").wait(instance_id, timeout=60)
    assert status.status == "complete" and status.output["status"] == "posted"
    # The decision is recorded with who made it, through whose link.
    await page.goto(f"{served.url}/instances/{instance_id}")
    assert ("approved by Dana <i> (through an approval link from alice)"
            in await page.inner_text("main"))

    # Reused: refused, and says so.
    response = await stranger.goto(link)
    assert response is not None and response.status == 410
    assert "already used" in await stranger.inner_text("main")
    # Tampered: refused as not valid.
    body, mac = link.rsplit(".", 1)
    forged = f"{body}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"
    response = await stranger.goto(forged)
    assert response is not None and response.status == 400
    assert "not valid" in await stranger.inner_text("main")


async def test_an_expired_link_is_refused(browser: Any, served: Served) -> None:
    from agentflow.console._auth import Signer

    instance_id = await start_waiting(served.flow, APPROVAL, {"repo": "r"})
    view = await _request(served, instance_id)
    token = Signer(served.secret.encode()).new_link(instance_id, view, lifetime=-1,
                                                    by="alice")
    page = await (await browser.new_context()).new_page()
    response = await page.goto(f"{served.url}/link/{token}")
    assert response is not None and response.status == 410
    assert "expired" in await page.inner_text("main")
    assert (await served.flow.agent("release-bot").status(instance_id)).status == "waiting"


async def _request(served: Served, instance_id: str) -> str:
    from agentflow.tools import DEFAULT_HUMAN_ONLY, approval_request

    request = await approval_request(served.flow.agent("release-bot"), instance_id, "",
                                     DEFAULT_HUMAN_ONLY)
    return request.ref


async def test_an_action_without_the_csrf_token_is_refused(browser: Any,
                                                           served: Served) -> None:
    instance_id = await start_waiting(served.flow, APPROVAL, {"repo": "r"})
    page = await sign_in(browser, served)
    await page.goto(f"{served.url}/instances/{instance_id}/confirm?action=terminate")
    # (the header's sign-out form has its own token: only the action's form loses it)
    await page.evaluate("document.querySelector('form.card input[name=csrf]').remove()")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.click("button.danger")
    assert (await answer.value).status == 403
    assert "CSRF token is missing or wrong" in await page.inner_text("main")
    # A wrong token is refused the same way; so is the approval form without one.
    await page.goto(f"{served.url}/instances/{instance_id}/confirm?action=terminate")
    await page.evaluate("document.querySelector('form.card input[name=csrf]').value = 'x'")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.click("button.danger")
    assert (await answer.value).status == 403
    await page.goto(f"{served.url}/approvals")
    await page.evaluate("document.querySelector('form.decide input[name=csrf]').remove()")
    async with page.expect_response(lambda r: r.request.method == "POST") as answer:
        await page.click("button.approve")
    assert (await answer.value).status == 403
    assert (await served.flow.agent("release-bot").status(instance_id)).status == "waiting"
    # With the token, the same action goes through (so the refusals above were CSRF's).
    await page.goto(f"{served.url}/instances/{instance_id}/confirm?action=terminate")
    await page.click("button.danger")
    await page.locator("#status", has_text="terminated").wait_for(timeout=WAIT_MS)
    # Actions are recorded with who took them; so is a restart from a step.
    assert "terminated by operator alice via console" in await page.inner_text("main")
    await page.goto(f"{served.url}/instances/{instance_id}/confirm?action=restart")
    await page.select_option("select[name=from_step]", label="approval")
    await page.click("button.danger")
    await page.locator("text=restarted by operator alice via console").wait_for()
    restarts = await served.flow.engine.store.read_operator_log("restart", instance_id)
    assert [(r.actor, json.loads(r.value)["from_step"]) for r in restarts] == [
        ("operator alice via console", "approval")]


async def test_a_read_only_operator_can_look_but_not_act(browser: Any,
                                                         served: Served) -> None:
    instance_id = await start_waiting(served.flow, APPROVAL, {"repo": "r"})
    page = await sign_in(browser, served, READER)
    await page.goto(f"{served.url}/approvals")
    card = page.locator(f"section.approval[data-instance='{instance_id}']")
    await card.wait_for()
    assert await card.locator("button.approve").count() == 0
    csrf = await page.locator("input[name=csrf]").first.input_value()  # the sign-out form
    answer = await page.request.post(f"{served.url}/instances/{instance_id}/decide",
                                     form={"csrf": csrf, "decision": "approve", "ref": "x"})
    assert answer.status == 403 and "read-only" in await answer.text()
    assert (await served.flow.agent("release-bot").status(instance_id)).status == "waiting"


async def test_every_page_shows_hostile_names_as_text(browser: Any, served: Served) -> None:
    instance_id = await start_waiting(served.flow, HOSTILE, {"x": "<i>params</i>\u202e"},
                                      agent="agent-x", plan="hostile")
    await served.flow.agent("agent-x").submit_plan("hostile", HOSTILE + "\n# v2 <b>\n")
    page = await sign_in(browser, served)
    versions = [v.version for v in await served.flow.agent("agent-x").plan_versions("hostile")]
    pages = ["/instances", f"/instances/{instance_id}", "/approvals", "/plans",
             "/plans/agent-x/hostile",
             f"/plans/agent-x/hostile/diff?a={versions[0]}&b={versions[1]}",
             f"/instances/{instance_id}/confirm?action=restart", "/schedules"]
    for path in pages:
        await page.goto(f"{served.url}{path}")
        main = page.locator("main")
        assert await main.locator("img, script, b, i").count() == 0, path
        assert not await page.evaluate("window.__pwned"), path
        html = await main.inner_html()
        assert "\x1b" not in html and "\u202e" not in html and "\x07" not in html, path
    # The page behind an approval link shows the same record, as text too.
    await page.goto(f"{served.url}/instances/{instance_id}")
    await page.click("text=Make an approval link")
    link = await page.locator("#link").input_value()
    stranger = await (await browser.new_context()).new_page()
    await stranger.goto(link)
    assert await stranger.locator("main").locator("img, script, b, i").count() == 0
    assert not await stranger.evaluate("window.__pwned")
    assert '"x": "<i>params</i>\\u202e"' in await stranger.inner_text("main")
    await page.goto(f"{served.url}/instances/{instance_id}")
    text = await page.inner_text("main")
    assert HOSTILE_STEP in text  # the step's name, as text
    assert "</script>\\u001b[31m\\u202eevil\\r\\n" in text  # its result, escaped
    assert '"x": "<i>params</i>\\u202e"' in text
    # The error arrives once the approval is answered: shown as text too.
    await page.click("button.reject")
    await page.locator("#status", has_text="errored").wait_for(timeout=WAIT_MS)
    assert "<b onmouseover=window.__pwned=3>bold</b>\\x07\\u202e" in await page.inner_text(
        "main")
    assert await page.locator("main b[onmouseover]").count() == 0
    assert not await page.evaluate("window.__pwned")
    await page.goto(f"{served.url}/plans/agent-x/hostile/diff?a={versions[0]}&b={versions[1]}")
    await page.screenshot(path=screenshot_path("console-plan-diff.png"), full_page=True)


@pytest.mark.serve_args("--no-run")
async def test_a_plan_mints_a_link_through_its_grant(browser: Any, served: Served) -> None:
    from agentflow.console import ApprovalLinksCapability

    # This test's own process runs the plan (the server only serves: its worker has no
    # grant of approval_links), with the capability signed by the console's secret.
    async with AgentFlow(served.db, isolation="inline") as runner:
        agent = runner.agent("mailer", capabilities={"approval_links": ApprovalLinksCapability(
            served.url, secret=served.secret.encode())})
        await agent.submit_plan("ask", LINKING)
        inst = await agent.start("ask")
        assert (await agent.wait(inst.id, timeout=60)).status == "waiting"
        link = next(r.result for r in await agent.history(inst.id)
                    if r.name == "make a link")["url"]
        page = await (await browser.new_context()).new_page()
        await page.goto(link)
        assert "plan of agent mailer" in await page.inner_text("main")
        await page.fill("input[name=name]", "Erin")
        await page.click("button.approve")
        await page.locator("text=the plan received your decision").wait_for()
        status = await agent.wait(inst.id, timeout=60)
        assert status.status == "complete" and status.output["approved"] is True
        response = await page.goto(link)
        assert response is not None and response.status == 410
        assert "already used" in await page.inner_text("main")


async def test_the_timeline_shows_attempts_logs_and_the_failing_line(browser: Any,
                                                                     served: Served) -> None:
    agent = served.flow.agent("release-bot")
    await agent.submit_plan("failing", FAILING)
    inst = await agent.start("failing")
    status = await agent.wait(inst.id, timeout=60)
    assert status.status == "errored", status
    page = await sign_in(browser, served)
    await page.goto(f"{served.url}/instances/{inst.id}")
    main = await page.inner_text("main")
    assert "nope <b>" in main and "ValueError" in main
    attempts = page.locator(".attempt")
    assert await attempts.count() == 2  # both failed attempts, each with its error
    assert "attempt 1" in await attempts.nth(0).inner_text()
    assert "trying <the> thing" in await attempts.nth(0).locator("pre.log").inner_text()
    assert "line 3, in fail" in main  # where the error was raised, plan frames only
    # The located error's line is the one marked in the source.
    marked = await page.locator("#current-line").inner_text()
    assert 'raise ValueError("nope <b>")' in marked


async def test_schedules_are_listed(browser: Any, served: Served) -> None:
    agent = served.flow.agent("release-bot")
    await agent.submit_plan("release-notes", APPROVAL)
    await agent.schedule("release-notes", cron="0 7 * * *", params={"repo": "r"})
    page = await sign_in(browser, served)
    await page.goto(f"{served.url}/schedules")
    text = await page.inner_text("main")
    assert "release-notes" in text and "0 7 * * *" in text and "active" in text


TWO_APPROVERS = '''async def run(event, step):
    first, second = await gather(
        step.wait_for_event("first approver", type="approval", timeout="7 days"),
        step.wait_for_event("second approver", type="approval", timeout="1 day"))
    return {"first": first["payload"]["comment"], "second": second["payload"]["comment"]}
'''


async def test_two_open_approvals_are_answered_one_at_a_time_each_by_its_own_wait(
        browser: Any, served: Served) -> None:
    # The second approver's wait ends first, so the console shows it first; the run
    # gathers the first approver's wait first, which took an unaddressed answer.
    instance_id = await start_waiting(served.flow, TWO_APPROVERS, {}, plan="two")
    page = await sign_in(browser, served)
    for step, comment in (("second approver", "grace"), ("first approver", "ada")):
        await page.goto(f"{served.url}/approvals")
        card = page.locator(f"section.approval[data-instance='{instance_id}']")
        await card.wait_for()
        assert step in await card.inner_text(), step
        await card.locator("textarea[name=comment]").fill(comment)
        await card.locator("button.approve").click()
        await page.wait_for_url(re.compile(f"/instances/{instance_id}"))
        if step == "second approver":
            await served.flow.agent("release-bot").wait(instance_id, timeout=60)
    status = await served.flow.agent("release-bot").wait(instance_id, timeout=60)
    assert status.output == {"first": "ada", "second": "grace"}, status
