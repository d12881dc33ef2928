# error: TypeError on: (no line: a return value is checked after run returned)
# message-says: the value `run` returned is not JSON
# after-step: load


async def run(event, step):
    ids = await step.do("load", lambda: [1, 2, 2])
    return {"unique": set(ids)}
