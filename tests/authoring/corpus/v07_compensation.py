# params: {"order": "o9"}
# output: {"status": "failed", "released": "H-o9", "error": "card declined"}


def charge(order):
    raise ValueError("card declined")


async def run(event, step):
    order = event.payload["order"]
    hold = await step.do("reserve stock", lambda: {"hold": f"H-{order}"})
    try:
        await step.do("charge card", lambda: charge(order), retries={"limit": 1, "delay": "10 seconds"})
    except ValueError as err:
        released = await step.do("release stock", lambda: hold["hold"])
        return {"status": "failed", "released": released, "error": str(err)}
    return {"status": "paid"}
