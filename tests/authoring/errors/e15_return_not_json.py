# error: TypeError on: (no line: a return value is checked after run returned)
# message-says: the value `run` returned is not JSON
# after-step: numbers


async def run(event, step):
    numbers = await step.do("numbers", lambda: [1.0, 2.0])
    return {"ratio": float("nan") if numbers else 0}
