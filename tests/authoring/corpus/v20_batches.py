# params: {"ids": [1, 2, 3, 4, 5], "batch": 2}
# output: {"batches": 3, "processed": [2, 4, 6, 8, 10]}


def process(batch):
    return [x * 2 for x in batch]


async def run(event, step):
    ids, size = event.payload["ids"], event.payload["batch"]
    processed = []
    batches = [ids[i:i + size] for i in range(0, len(ids), size)]
    for n, batch in enumerate(batches):
        processed.extend(await step.do(f"batch {n}", lambda: process(batch)))
    return {"batches": len(batches), "processed": processed}
