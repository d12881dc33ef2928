# error: KeyError on: user["email"]
# function: run
# message-is: 'email'
# after-step: load user


async def run(event, step):
    user = await step.do("load user", lambda: {"name": "ada"})
    return user["email"]
