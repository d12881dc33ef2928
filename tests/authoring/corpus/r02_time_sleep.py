# expect: AF401 on: time.sleep(30)
# hint-says: await step.sleep("pause"
# fix: time.sleep(30) => await step.sleep("pause", 30)
# output: {"checked": 2}


async def run(event, step):
    first = await step.do("first check", lambda: 1)
    time.sleep(30)
    second = await step.do("second check", lambda: first + 1)
    return {"checked": second}
