# expect: AF402 on: asyncio.sleep(60)
# hint-says: await step.sleep("pause"
# fix: await asyncio.sleep(60) => await step.sleep("pause", 60)
# output: "done"


async def run(event, step):
    await step.do("start job", lambda: {"job": 1})
    await asyncio.sleep(60)
    return await step.do("finish job", lambda: "done")
