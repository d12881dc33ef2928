# params: {"scores": {"ann": 71, "bob": 45, "cy": 90}}
# output: {"passed": {"ann": true, "bob": false, "cy": true}, "best": "cy"}

PASS_MARK = 50


async def run(event, step):
    scores = await step.do("load scores", lambda: event.payload["scores"])
    passed = {name: score >= PASS_MARK for name, score in scores.items()}
    best = max(scores, key=lambda name: scores[name])
    return {"passed": passed, "best": best}
