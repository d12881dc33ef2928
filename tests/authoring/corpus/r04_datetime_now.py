# expect: AF401 on: datetime.now()
# hint-says: await step.now()
# fix: today = datetime.now() => today = await step.now()
# output: {"year": 2027}


async def run(event, step):
    today = datetime.now()
    stamp = await step.do("stamp", lambda: {"year": today.year})
    return stamp
