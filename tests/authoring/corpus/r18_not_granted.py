# grants: kv
# expect: AF409 on: env.http.get_json
# hint-says: `http`
# applied: env.kv.get(
# fix: env.http.get_json("https://example.com/last") => env.kv.get("last", "none")
# output: "none"


async def run(event, step):
    return await step.do("last value", lambda: env.http.get_json("https://example.com/last"))
