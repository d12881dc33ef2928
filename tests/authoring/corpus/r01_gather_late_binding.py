# expect: AF208 on: lambda: square(i)
# hint-says: lambda i=i:
# fix: lambda: square(i) => lambda i=i: square(i)
# output: [0, 1, 4]


def square(n):
    return n * n


async def run(event, step):
    return await gather(*[step.do(f"square {i}", lambda: square(i)) for i in range(3)])
