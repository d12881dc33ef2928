# params: {"items": [{"n": "x", "v": 3}, {"n": "y", "v": 9}, {"n": "z", "v": 5}], "top": 2}
# output: ["y", "z"]


async def run(event, step):
    items = await step.do("fetch items", lambda: event.payload["items"])
    ranked = sorted(items, key=lambda item: item["v"], reverse=True)
    return [item["n"] for item in ranked[:event.payload.get("top", 3)]]
