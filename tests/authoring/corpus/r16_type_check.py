# params: {"value": [1, 2]}
# expect: AF402 on: type(value) == list
# hint-says: isinstance(value, 
# fix: type(value) == list => isinstance(value, list)
# output: "list of 2"


async def run(event, step):
    value = await step.do("load", lambda: event.payload["value"])
    if type(value) == list:
        return f"list of {len(value)}"
    return "scalar"
