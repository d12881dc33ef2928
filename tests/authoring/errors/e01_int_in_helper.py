# params: {"raw": "12x"}
# error: ValueError on: return int(text)
# function: parse
# after-step: fetch


def parse(text):
    return int(text)


async def run(event, step):
    raw = await step.do("fetch", lambda: event.payload["raw"])
    return parse(raw) * 2
