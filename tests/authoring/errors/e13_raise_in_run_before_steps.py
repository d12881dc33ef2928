# error: ValueError on: raise ValueError("no items given")
# function: run


async def run(event, step):
    items = event.payload.get("items") if event.payload else None
    if not items:
        raise ValueError("no items given")
    return await step.do("count", lambda: len(items))
