"""Plans the console tests start."""

APPROVAL = '''async def run(event, step):
    repo = event.payload["repo"]
    draft = await step.do("draft the post", lambda: {"text": "Release notes for " + repo})
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    if not decision["payload"]["approved"]:
        return {"status": "rejected", "comment": decision["payload"]["comment"]}
    await step.do("post it", lambda: "posted")
    return {"status": "posted", "by": decision["payload"]["by"]}
'''

# What a plan chooses, full of markup and control characters: every page must show it
# as text. Plan names and agent ids are restricted to safe characters, and the
# validator and the engine refuse control, zero-width and bidi characters in step
# names; markup in step names, and anything at all in params, outputs and error
# messages, reach the console.
HOSTILE_STEP = '<img src=x onerror="window.__pwned=1"> & <b>bold</b>'
HOSTILE = '''async def run(event, step):
    await step.do("<img src=x onerror=\\"window.__pwned=1\\"> & <b>bold</b>",
                  lambda: "<script>window.__pwned=2</script>\\x1b[31m\\u202eevil\\r\\n")
    await step.wait_for_event("approval", type="approval", timeout="7 days")
    raise ValueError("<b onmouseover=window.__pwned=3>bold</b>\\x07\\u202e")
'''

# A plan that makes its own approval link (through a capability the operator grants)
# and hands it on (here: returns it in a step's result, where a test can read it).
LINKING = '''async def run(event, step):
    link = await step.do("make a link", lambda: env.approval_links.link())
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    return {"approved": decision["payload"]["approved"], "link": link["url"]}
'''

# Prints, fails every attempt, and errors: the timeline shows each failed attempt with
# its error and its printed lines, and the source marks the line that raised.
FAILING = '''def fail():
    print("trying <the> thing")
    raise ValueError("nope <b>")


async def run(event, step):
    print("starting")
    await step.do("flaky", lambda: fail(), retries={"limit": 1, "delay": 0})
    return "unreachable"
'''
