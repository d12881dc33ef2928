# output: {"in_range": true, "id_length": 36}


async def run(event, step):
    roll = await step.random()
    token = await step.uuid()
    await step.sleep("let the replay happen", "1 hour")
    return {"in_range": 0 <= roll < 1, "id_length": len(token)}
