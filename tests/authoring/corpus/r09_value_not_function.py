# expect: AF207 on: compute(3))
# hint-says: lambda:
# fix: step.do("compute", compute(3)) => step.do("compute", lambda: compute(3))
# output: 9


def compute(n):
    return n * n


async def run(event, step):
    return await step.do("compute", compute(3))
