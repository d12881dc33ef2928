# expect: AF401 on: uuid.uuid4()
# hint-says: await step.uuid()
# fix: str(uuid.uuid4()) => await step.uuid()
# output: 36


async def run(event, step):
    request_id = str(uuid.uuid4())
    return await step.do("register", lambda: len(request_id))
