# expect: AF401 on: random.random()
# hint-says: await step.random()
# fix: random.random() => await step.random()
# output: true


async def run(event, step):
    roll = random.random()
    picked = await step.do("pick", lambda: roll < 1)
    return picked
