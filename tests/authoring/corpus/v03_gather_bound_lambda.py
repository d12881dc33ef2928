# params: {"urls": ["a", "bb", "ccc"]}
# output: [{"url": "a", "length": 1}, {"url": "bb", "length": 2}, {"url": "ccc", "length": 3}]


def measure(url):
    return {"url": url, "length": len(url)}


async def run(event, step):
    urls = event.payload["urls"]
    results = await gather(*[step.do(f"measure {u}", lambda u=u: measure(u)) for u in urls])
    return results
