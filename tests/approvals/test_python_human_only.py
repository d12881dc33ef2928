"""Human-only types set from Python (``ServerConfig.human_only``,
``ToolContext.human_only``) hold for every front end on the database, not only the
process that set them: they are written into the database's policy, recorded with who
set them, and a second server process that was never given them refuses them."""

from __future__ import annotations

import re
import sys
import textwrap

from mcp import Client, StdioServerParameters

from agentflow.policy import OperatorPolicy
from agentflow.tools import Toolbox, ToolContext
from tests.approvals.conftest import AGENT, REPO, Setup, _env, mcp_client

DEPLOY_PLAN = '''async def run(event, step):
    window = await step.wait_for_event("window", type="{type}", timeout="1 day")
    return {{"deployed": window["payload"]}}
'''

#: A host's own Python: an MCP server on stdio built with ServerConfig(human_only=...).
PYTHON_SERVER = textwrap.dedent('''
    import asyncio, sys
    from agentflow import AgentFlow
    from mcp_server import ServerConfig, build_server

    async def main():
        async with AgentFlow(sys.argv[1], isolation="inline", run_scheduler=False) as af:
            config = ServerConfig(agent_id=sys.argv[2], human_only=frozenset({"deploy"}))
            await build_server(af, config).run_stdio_async()

    asyncio.run(main())
''')


async def waiting_for(setup: Setup, event_type: str, iid: str) -> None:
    agent = setup.af.agent(AGENT)
    await agent.submit_plan(f"p-{event_type}", DEPLOY_PLAN.format(type=event_type))
    inst = await agent.start(f"p-{event_type}", id=iid)
    assert (await inst.wait(timeout=60)).status == "waiting"


async def refused_by_a_plain_server(setup: Setup, event_type: str, iid: str) -> None:
    """A second server process, given no human-only type, refuses ``event_type``."""
    async with mcp_client(setup, "stdio", "2025-11-25") as plain:
        result = await plain.call_tool("send_event", {"instance_id": iid, "type": event_type})
    assert result.is_error, result
    assert "human-only" in result.content[0].text  # type: ignore[union-attr]
    assert await setup.af.engine.store.pending_events(iid, event_type) == []
    assert (await setup.af.agent(AGENT).status(iid)).status == "waiting"


async def test_server_config_human_only_holds_in_another_server_process(setup: Setup
                                                                        ) -> None:
    await waiting_for(setup, "deploy", "dep-py")
    params = StdioServerParameters(command=sys.executable,
                                   args=["-c", PYTHON_SERVER, setup.url, AGENT],
                                   env=_env(), cwd=str(REPO))
    async with Client(params, mode="legacy") as configured:  # type: ignore[arg-type]
        listed = await configured.call_tool("list_pending_events", {})
        assert not listed.is_error
    history = await OperatorPolicy(setup.af.engine.store).history()
    [change] = [h for h in history if h.subject == "human_only:deploy"]
    assert change.value is True
    assert re.fullmatch(r"operator \S+ via python ServerConfig.human_only", change.actor)
    await refused_by_a_plain_server(setup, "deploy", "dep-py")


async def test_tool_context_human_only_holds_in_another_server_process(setup: Setup
                                                                       ) -> None:
    await waiting_for(setup, "refund", "ref-py")
    box = Toolbox(setup.af.agent(AGENT), context=ToolContext(human_only={"refund"}))
    own = await box.run("send_event", {"instance_id": "ref-py", "type": "refund"})
    assert own.error is not None and "human-only" in own.error  # refused here too
    assert "refund" in (await OperatorPolicy(setup.af.engine.store).read()).human_only
    [change] = [h for h in await OperatorPolicy(setup.af.engine.store).history()
                if h.subject == "human_only:refund"]
    assert re.fullmatch(r"operator \S+ via python ToolContext.human_only", change.actor)
    await refused_by_a_plain_server(setup, "refund", "ref-py")
