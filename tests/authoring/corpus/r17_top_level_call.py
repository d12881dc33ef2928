# expect: AF106 on: DEFAULTS = dict(
# hint-says: literal
# applied: {"retries": 3
# fix: DEFAULTS = dict(retries=3, region="eu") => DEFAULTS = {"retries": 3, "region": "eu"}
# output: "eu"
DEFAULTS = dict(retries=3, region="eu")


async def run(event, step):
    return await step.do("region", lambda: DEFAULTS["region"])
