# params: {"values": ["4", "x", "6"]}
# output: {"sum": 10, "skipped": ["x"]}


def parse(text):
    return int(text)


async def run(event, step):
    total, skipped = 0, []
    for raw in event.payload["values"]:
        try:
            total += parse(raw)
        except ValueError:
            print(f"skipping {raw!r}")
            skipped.append(raw)
    await step.do("record", lambda: total)
    return {"sum": total, "skipped": skipped}
