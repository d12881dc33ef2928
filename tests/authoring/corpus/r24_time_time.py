# expect: AF401 on: time.time()
# hint-says: await step.now()
# fix: started = time.time() => started = (await step.now()).timestamp()
# output: true


async def run(event, step):
    started = time.time()
    return await step.do("elapsed", lambda: started > 0)
