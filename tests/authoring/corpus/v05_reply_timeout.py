# params: {"question": "lunch?"}
# output: {"status": "no reply", "question": "lunch?"}


async def run(event, step):
    question = event.payload["question"]
    await step.do("ask", lambda: {"asked": question})
    try:
        reply = await step.wait_for_event("wait for reply", type="reply", timeout="2 days")
    except WorkflowTimeoutError:
        return {"status": "no reply", "question": question}
    return {"status": "answered", "answer": reply["payload"]}
