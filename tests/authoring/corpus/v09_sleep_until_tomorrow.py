# output: {"slept": true, "hours": 24.0}


async def run(event, step):
    start = await step.now()
    wake = start.timestamp() + 24 * 3600
    await step.sleep_until("until tomorrow", wake)
    end = await step.now()
    return {"slept": end.timestamp() >= wake, "hours": round((wake - start.timestamp()) / 3600, 1)}
