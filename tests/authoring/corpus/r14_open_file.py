# params: {"config": {"threshold": 5}}
# expect: AF402 on: open("config.json")
# hint-says: event.payload
# applied: event.payload["config"]
# fix: json_loads(open("config.json").read()) => event.payload["config"]
# output: {"threshold": 5}


async def run(event, step):
    config = json_loads(open("config.json").read())
    return await step.do("use config", lambda: config)
