# grants: kv
# error: TypeError on: env.kv.get()
# function: run
# step: read
# attempts: 1
# message-says: env.kv.get(key, default=None)


async def run(event, step):
    return await step.do("read", lambda: env.kv.get())
