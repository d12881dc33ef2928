# params: {"user": {"email": "a@b.c"}}
# expect: AF402 on: getattr(user, "email"
# hint-says: d.get(key)
# applied: .get("email"
# fix: getattr(user, "email", None) => user.get("email", None)
# output: "a@b.c"


async def run(event, step):
    user = await step.do("load user", lambda: event.payload["user"])
    return getattr(user, "email", None)
