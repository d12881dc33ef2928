# events: {"approval": {"approved": true}}
# expect: AF207 on: step.wait_for_event("approval", "approval")
# hint-says: type=
# fix: step.wait_for_event("approval", "approval") => step.wait_for_event("approval", type="approval")
# output: true


async def run(event, step):
    decision = await step.wait_for_event("approval", "approval")
    return decision["payload"]["approved"]
