# params: {"users": ["ann", "bob"]}
# output: {"ann": "welcome ann", "bob": "welcome bob"}


async def welcome(step, user):
    profile = await step.do(f"load {user}", lambda: {"name": user})
    return await step.do(f"greet {user}", lambda: f"welcome {profile['name']}")


async def run(event, step):
    out = {}
    for user in event.payload["users"]:
        out[user] = await welcome(step, user)
    return out
