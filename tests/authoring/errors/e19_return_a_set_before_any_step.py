# error: TypeError on: (no line: a return value is checked after run returned)
# message-says: the value `run` returned is not JSON
# at: in the return value of run, before any step


async def run(event, step):
    return {"tags": {"a", "b"}}
