# expect: AF201 on: result = step.do(
# hint-says: await step.do(
# fix: result = step.do( => result = await step.do(
# output: 42


async def run(event, step):
    result = step.do("compute", lambda: 6 * 7)
    return result
