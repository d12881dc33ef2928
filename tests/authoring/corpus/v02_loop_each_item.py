# params: {"orders": [{"id": "a", "qty": 2, "price": 3.5}, {"id": "b", "qty": 1, "price": 10}]}
# output: {"totals": {"a": 7.0, "b": 10}, "grand_total": 17.0}


def line_total(order):
    return {"id": order["id"], "total": order["qty"] * order["price"]}


async def run(event, step):
    totals = {}
    for order in event.payload["orders"]:
        result = await step.do(f"price order {order['id']}", lambda: line_total(order))
        totals[result["id"]] = result["total"]
    return {"totals": totals, "grand_total": sum(totals.values())}
