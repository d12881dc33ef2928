# params: {"items": []}
# error: ZeroDivisionError on: return sum(values) / len(values)
# function: average
# step: average


def average(values):
    return sum(values) / len(values)


async def run(event, step):
    return await step.do("average", lambda: average(event.payload["items"]),
                         retries={"limit": 1, "delay": "1 second"})
