# params: {"temps": [21.5, 19.0, 23.5, 20.0]}
# output: {"min": 19.0, "max": 23.5, "mean": 21.0, "pairs": [[21.5, 19.0], [19.0, 23.5], [23.5, 20.0]]}


async def run(event, step):
    temps = await step.do("read temps", lambda: event.payload["temps"])
    mean = round(sum(temps) / len(temps), 2)
    pairs = [list(p) for p in zip(temps, temps[1:])]
    return {"min": min(temps), "max": max(temps), "mean": mean, "pairs": pairs}
