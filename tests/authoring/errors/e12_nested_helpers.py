# params: {"text": "a=1;b"}
# error: ValueError on: key, value = part.split("=")
# function: pair
# step: parse config


def pair(part):
    key, value = part.split("=")
    return [key, value]


def parse_config(text):
    return [pair(p) for p in text.split(";")]


async def run(event, step):
    return await step.do("parse config", lambda: parse_config(event.payload["text"]),
                         retries={"limit": 0})
