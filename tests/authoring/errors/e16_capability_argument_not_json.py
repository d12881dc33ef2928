# grants: kv
# error: TypeError on: env.kv.set("seen", {1, 2})
# function: run
# step: remember
# attempts: 1
# message-says: pass JSON values


async def run(event, step):
    await step.do("remember", lambda: env.kv.set("seen", {1, 2}))
    return "kept"
