# error: TypeError on: return await step.do("deep", lambda: deep)
# function: run
# step: deep
# attempts: 1
# message-says: nested too deeply


async def run(event, step):
    deep = []
    for i in range(100000):
        deep = [deep]
    return await step.do("deep", lambda: deep)
