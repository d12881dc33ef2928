# output: {"day": "2027-01-15", "weekday": 4}


async def run(event, step):
    now = await step.now()
    label = f"{now:%Y-%m-%d}"
    report = await step.do(f"daily report {label}", lambda: {"day": label})
    return {"day": report["day"], "weekday": now.weekday()}
