# expect: AF207 on: step.sleep(300)
# hint-says: step.sleep("pause"
# fix: step.sleep(300) => step.sleep("pause", 300)
# output: "waited"


async def run(event, step):
    await step.sleep(300)
    return "waited"
