# expect: AF501 on: except:
# hint-says: except Exception:
# fix: except: => except Exception:
# output: {"ok": false}


def risky():
    raise RuntimeError("boom")


async def run(event, step):
    try:
        await step.do("risky", risky, retries={"limit": 0})
    except:
        return {"ok": False}
    return {"ok": True}
