# expect: AF103 on: def run(event, step):
# hint-says: async def run(event, step):
# fix: def run(event, step): => async def run(event, step):
# output: 1
def run(event, step):
    return 1
