# params: {"order": {"total": -1}}
# error: NonRetryableError on: raise NonRetryableError(
# function: validate_order
# step: validate
# attempts: 1


def validate_order(order):
    if order["total"] < 0:
        raise NonRetryableError("a negative total cannot be charged")
    return order


async def run(event, step):
    return await step.do("validate", lambda: validate_order(event.payload["order"]))
