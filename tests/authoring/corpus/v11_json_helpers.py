# params: {"raw": "{\"a\": 1, \"b\": [1, 2]}"}
# output: {"keys": ["a", "b", "c"], "text": "{\"a\": 1, \"b\": [1, 2], \"c\": true}"}


async def run(event, step):
    data = await step.do("parse", lambda: json_loads(event.payload["raw"]))
    data["c"] = True
    text = json_dumps(data)
    return {"keys": sorted(data), "text": text}
