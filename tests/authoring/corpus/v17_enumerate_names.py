# params: {"lines": ["first", "second"]}
# output: ["1: FIRST", "2: SECOND"]


async def run(event, step):
    out = []
    for i, line in enumerate(event.payload["lines"], 1):
        out.append(await step.do(f"line {i}", lambda: f"{i}: {line.upper()}"))
    return out
