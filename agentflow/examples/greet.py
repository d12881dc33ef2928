"""The README's workflow: a step, a durable sleep, a flaky call retried, an approval."""

from agentflow import Engine

engine = Engine()  # ./agentflow.db, or $AGENTFLOW_DB
attempts = {"n": 0}


def flaky_send(name: str) -> str:
    attempts["n"] += 1
    if attempts["n"] == 1:
        raise ConnectionError("mail server busy")  # the first attempt fails; a retry follows
    return f"sent welcome mail to {name}"


@engine.workflow("greet")
async def greet(event, step):
    user = await step.do("lookup", lambda: {"name": event.payload["name"]})
    await step.sleep("cool off", "2 seconds")
    mail = await step.do("send mail", lambda: flaky_send(user["name"]),
                         retries={"limit": 3, "delay": "1 second", "backoff": "constant"})
    ok = await step.wait_for_event("approval", type="approval", timeout="7 days")
    return f"hello {user['name']}: {mail}, approved={ok['payload']['approved']}"
