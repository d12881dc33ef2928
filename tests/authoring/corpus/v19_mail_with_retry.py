# grants: mail
# params: {"to": "ada@example.com"}
# output: {"to": "ada@example.com", "status": "sent"}


async def run(event, step):
    to = event.payload["to"]
    print("sending to", to)
    result = await step.do("send mail", lambda: env.mail.send(to, "welcome!"),
                           retries={"limit": 3, "delay": "30 seconds", "backoff": "constant"})
    return result
