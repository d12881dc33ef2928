# params: {"amount": 250}
# events: {"approval": {"approved": true, "comment": "ok", "by": "human"}}
# output: {"status": "paid", "amount": 250}


async def run(event, step):
    amount = event.payload["amount"]
    request = await step.do("prepare payment", lambda: {"amount": amount, "currency": "EUR"})
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    if not decision["payload"].get("approved"):
        return {"status": "rejected"}
    await step.do("pay", lambda: {"paid": request["amount"]})
    return {"status": "paid", "amount": amount}
