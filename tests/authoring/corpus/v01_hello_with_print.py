# params: {"name": "Ada"}
# output: {"greeting": "hello Ada"}
"""Greet the user named in the params."""


async def run(event, step):
    name = event.payload.get("name", "world")
    print(f"greeting {name}")
    greeting = await step.do("greet", lambda: f"hello {name}")
    print("done:", greeting)
    return {"greeting": greeting}
