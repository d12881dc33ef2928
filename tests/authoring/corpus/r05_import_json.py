# expect: AF301 on: import json
# hint-says: json_dumps(
# fix: import json
# fix: json.dumps(report) => json_dumps(report)
# output: "{\"n\": 2}"
import json


async def run(event, step):
    report = await step.do("count", lambda: {"n": 2})
    return json.dumps(report)
