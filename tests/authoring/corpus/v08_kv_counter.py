# grants: kv
# output: {"before": 0, "after": 1}


async def bump(step):
    current = await step.do("read counter", lambda: env.kv.get("runs", 0))
    await step.do("write counter", lambda: env.kv.set("runs", current + 1))
    return current


async def run(event, step):
    before = await bump(step)
    after = await step.do("read again", lambda: env.kv.get("runs"))
    return {"before": before, "after": after}
