# error: AttributeError on: env.http.get_json
# function: <lambda>
# step: fetch page
# attempts: 1


async def run(event, step):
    page = await step.do("fetch page", lambda: env.http.get_json("https://example.com"))
    return page
