# expect: AF207 on: step.wait_for_event("reply")
# hint-says: type="reply"
# fix: step.wait_for_event("reply") => step.wait_for_event("reply", type="reply")
# events: {"reply": {"text": "yes"}}
# output: {"text": "yes"}


async def run(event, step):
    reply = await step.wait_for_event("reply")
    return reply["payload"]
