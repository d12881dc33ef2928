# error: ZeroDivisionError on: ratio = 1 / 0
# function: run
# at: before the first step


async def run(event, step):
    ratio = 1 / 0
    return await step.do("use", lambda: ratio)
