# error: MemoryError on: raise MemoryError()
# function: run
# after-step: size


async def run(event, step):
    size = await step.do("size", lambda: 10)
    if size > 5:
        raise MemoryError()
    return size
