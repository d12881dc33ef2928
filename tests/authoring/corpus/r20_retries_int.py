# expect: AF207 on: retries=3
# hint-says: retries={"limit": 3
# fix: retries=3 => retries={"limit": 3}
# output: "ok"


async def run(event, step):
    return await step.do("flaky call", lambda: "ok", retries=3)
