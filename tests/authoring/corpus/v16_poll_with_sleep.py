# output: {"ready_after": 3}


def check(attempt):
    return {"ready": attempt >= 3}


async def run(event, step):
    attempt = 0
    while attempt < 10:
        attempt += 1
        status = await step.do(f"check {attempt}", lambda: check(attempt))
        if status["ready"]:
            return {"ready_after": attempt}
        await step.sleep(f"wait {attempt}", "5 minutes")
    return {"ready_after": None}
