# expect: AF402 on: asyncio.gather(
# hint-says: the provided `gather`
# fix: asyncio.gather( => gather(
# output: [1, 2]


async def run(event, step):
    a, b = await asyncio.gather(step.do("a", lambda: 1), step.do("b", lambda: 2))
    return [a, b]
