# error: TypeError on: lambda: {1, 2, 3}
# function: run
# step: unique ids
# attempts: 1


async def run(event, step):
    return await step.do("unique ids", lambda: {1, 2, 3})
