# output: {"have_time": true, "have_random": true, "sum": 3}


async def run(event, step):
    now, roll, one, two = await gather(step.now(), step.random(),
                                       step.do("one", lambda: 1), step.do("two", lambda: 2))
    return {"have_time": now.year > 2000, "have_random": 0 <= roll < 1, "sum": one + two}
