# params: {"rows": [[1, 2], [3]]}
# error: IndexError on: return row[1]
# function: second
# after-step: row 1


def second(row):
    return row[1]


async def run(event, step):
    out = []
    for i, row in enumerate(event.payload["rows"]):
        await step.do(f"row {i}", lambda: len(row))
        out.append(second(row))
    return out
