# error: TypeError on: "total: " + count
# function: run
# after-step: count


async def run(event, step):
    count = await step.do("count", lambda: 3)
    return "total: " + count
