# error: InvalidArgumentError on: await step.sleep("nap", "soon")
# function: run
# step: nap


async def run(event, step):
    await step.sleep("nap", "soon")
    return "rested"
