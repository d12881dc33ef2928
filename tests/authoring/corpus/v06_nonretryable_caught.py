# params: {"order": {"id": "o1", "total": 0}}
# output: {"status": "invalid", "reason": "the order total must be positive"}


def check(order):
    if order.get("total", 0) <= 0:
        raise NonRetryableError("the order total must be positive")
    return {"ok": True}


async def run(event, step):
    order = event.payload["order"]
    try:
        await step.do("check order", lambda: check(order), retries={"limit": 3, "delay": "1 minute"})
    except NonRetryableError as err:
        return {"status": "invalid", "reason": str(err)}
    return {"status": "valid"}
