# expect: AF207 on: step.sleep("cool down")
# hint-says: "5 minutes"
# fix: step.sleep("cool down") => step.sleep("cool down", "5 minutes")
# output: "cooled"


async def run(event, step):
    await step.do("heat", lambda: 1)
    await step.sleep("cool down")
    return "cooled"
