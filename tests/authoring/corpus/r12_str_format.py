# params: {"name": "Ada", "count": 3}
# expect: AF406 on: .format(
# hint-says: f"
# fix: "{} has {} items".format(name, count) => f"{name} has {count} items"
# output: "Ada has 3 items"


async def run(event, step):
    name, count = event.payload["name"], event.payload["count"]
    return await step.do("describe", lambda: "{} has {} items".format(name, count))
