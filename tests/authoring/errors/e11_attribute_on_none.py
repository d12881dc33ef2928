# error: AttributeError on: profile.get("name")
# function: run
# after-step: load profile


async def run(event, step):
    profile = await step.do("load profile", lambda: None)
    return profile.get("name")
