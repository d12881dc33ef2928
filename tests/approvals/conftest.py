"""The front ends an attacker (a model) and an operator (a person) use, on both stores.

A model reaches agentflow through a model-facing front end: MCP over stdio or HTTP (in
both protocol modes), the OpenAI and Anthropic adapters behind the real SDK clients,
pydantic-ai's toolset, or a `Toolbox`. Each is a `ModelFrontEnd`: ``call(tool, args)``
returns what the model would read. The MCP servers are real subprocesses on the
test's database, steering only (``--no-run``); the test's own `AgentFlow` runs the
plans, with a capability that counts its side effects (`Payments`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from mcp import Client, StdioServerParameters, types
from mcp.client.streamable_http import streamable_http_client
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agentflow import AgentFlow
from agentflow.capabilities import Capability, CapabilityContext
from agentflow.tools import Toolbox
from agentflow.tools.anthropic import AnthropicTools
from agentflow.tools.openai import OpenAITools
from agentflow.tools.pydantic_ai import agentflow_toolset
from tests.mcp_server.conftest import REPO, free_port, wait_for_port
from tests.tools.scripted import chat_reply, messages_reply

AGENT = "alice"
#: 2025-11-25 (the initialize handshake) and the stateless 2026-07-28.
PROTOCOLS = {"2025-11-25": "legacy", "2026-07-28": "2026-07-28"}
MCP_FRONT_ENDS = [f"mcp-{t}-{p}" for t in ("stdio", "http") for p in PROTOCOLS]
MODEL_FRONT_ENDS = [*MCP_FRONT_ENDS, "openai", "anthropic", "pydantic-ai", "toolbox"]

#: Pays once a person approved: the payment is the side effect an approval buys.
PAY_PLAN = '''async def run(event, step):
    quote = await step.do("quote", lambda: event.payload["amount"])
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    if not decision["payload"]["approved"]:
        return {"paid": 0}
    receipt = await step.do("pay", lambda: env.pay.charge(quote))
    return {"paid": quote, "receipt": receipt}
'''


class Payments(Capability):
    """Counts charges: a durability claim is checked by its side effects."""

    name = "pay"
    methods = frozenset({"charge"})

    def __init__(self) -> None:
        self.charges: list[Any] = []

    async def do_charge(self, context: CapabilityContext, amount: Any) -> str:
        self.charges.append(amount)
        return f"receipt-{len(self.charges)}"


@dataclass
class Reply:
    """What a model reads back from one tool call."""

    is_error: bool
    text: str
    structured: dict[str, Any] | None = None


@dataclass
class Setup:
    """The test's database, the flow that runs plans on it, and what it charged."""

    url: str
    af: AgentFlow
    payments: Payments
    tmp: Any = None


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/approvals.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def setup(db_url: str, tmp_path: Any) -> AsyncIterator[Setup]:
    payments = Payments()
    flow = AgentFlow(db_url, isolation="inline")
    flow.agent(AGENT, capabilities={"pay": payments})
    async with flow:
        yield Setup(db_url, flow, payments, tmp_path)


def mcp_reply(result: types.CallToolResult) -> Reply:
    block = result.content[0]
    text = block.text if isinstance(block, types.TextContent) else str(block)
    return Reply(bool(result.is_error), text, result.structured_content)


def result_reply(content: str) -> Reply:
    if content.startswith("Error: "):
        return Reply(True, content)
    data = json.loads(content)
    return Reply(False, data.get("summary", ""), data)


Call = Callable[[str, dict[str, Any]], Awaitable[Reply]]
Elicitation = Callable[[Any, types.ElicitRequestParams], Awaitable[types.ElicitResult]]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


@asynccontextmanager
async def mcp_client(setup: Setup, transport: str, protocol: str,
                     elicitation: Elicitation | None = None,
                     extra: tuple[str, ...] = ()) -> AsyncIterator[Client]:
    """A real MCP client on a real server subprocess (steering only) on ``setup.url``."""
    mode = PROTOCOLS[protocol]
    kwargs: dict[str, Any] = {}
    if elicitation is not None:
        kwargs["elicitation_callback"] = elicitation
    common = ["--db", setup.url, "--isolation", "inline", "--no-run", *extra]
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "mcp_server", *common],
                                       env={**_env(), "AGENTFLOW_AGENT": AGENT},
                                       cwd=str(REPO))
        async with Client(params, mode=mode, **kwargs) as client:  # type: ignore[arg-type]
            yield client
        return
    port = free_port()
    proc = await asyncio.to_thread(http_server, port, common)
    try:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer tok-{AGENT}"},
                                  timeout=120)
        async with http, Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp",
                                                       http_client=http),
                                mode=mode, **kwargs) as client:  # type: ignore[arg-type]
            yield client
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.communicate, timeout=30)


def http_server(port: int, args: list[str]) -> subprocess.Popen[bytes]:
    """``agentflow-mcp --http`` for agent alice, listening (in a thread: it blocks)."""
    proc = subprocess.Popen([sys.executable, "-m", "mcp_server", "--http",
                             f"127.0.0.1:{port}", "--token", f"tok-{AGENT}={AGENT}", *args],
                            env=_env(), cwd=str(REPO), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    wait_for_port(port, proc, timeout=60)
    return proc


class _Scripted:
    """A model API on an ``httpx2.MockTransport`` whose next reply is one tool call."""

    def __init__(self) -> None:
        self.move: tuple[str, dict[str, Any]] | str = "done"
        self.turn = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.turn += 1
        if request.url.path.endswith("/chat/completions"):
            return httpx2.Response(200, json=chat_reply(self.turn, self.move))
        return httpx2.Response(200, json=messages_reply(self.turn, self.move))


@asynccontextmanager
async def model_front_end(setup: Setup, name: str) -> AsyncIterator[Call]:
    """``call(tool, args)`` through the named model-facing front end, as agent alice."""
    agent = setup.af.agent(AGENT)
    if name.startswith("mcp-"):
        _, transport, protocol = name.split("-", 2)
        async with mcp_client(setup, transport, protocol) as client:
            async def call_mcp(tool: str, args: dict[str, Any]) -> Reply:
                return mcp_reply(await client.call_tool(tool, args))
            yield call_mcp
        return
    if name == "toolbox":
        box = Toolbox(agent)

        async def call_box(tool: str, args: dict[str, Any]) -> Reply:
            outcome = await box.run(tool, args)
            if outcome.result is None:
                return Reply(True, outcome.text)
            return Reply(False, outcome.result.summary, outcome.result.model_dump(mode="json"))
        yield call_box
        return
    if name == "pydantic-ai":
        toolset = agentflow_toolset(agent)

        async def call_pai(tool: str, args: dict[str, Any]) -> Reply:
            def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
                if any(isinstance(m, ModelRequest) and any(
                        isinstance(p, ToolReturnPart) for p in m.parts) for m in messages):
                    return ModelResponse(parts=[TextPart("done")])
                return ModelResponse(parts=[ToolCallPart(tool, args)])
            run = await PydanticAgent(FunctionModel(model), toolsets=[toolset]).run("go")
            [part] = [p for m in run.all_messages() if isinstance(m, ModelRequest)
                      for p in m.parts if isinstance(p, ToolReturnPart)]
            if part.outcome == "failed":
                return Reply(True, str(part.content))
            content = part.content
            return Reply(False, content.get("summary", ""), content)
        yield call_pai
        return
    scripted = _Scripted()
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx2.AsyncClient(
            transport=httpx2.MockTransport(scripted)))
        if name == "openai":
            client = openai.AsyncOpenAI(api_key="sk-test", base_url="https://api.test/v1",
                                        max_retries=0, http_client=http)
            tools = OpenAITools(agent)

            async def call_openai(tool: str, args: dict[str, Any]) -> Reply:
                scripted.move = (tool, args)
                reply = await client.chat.completions.create(
                    model="gpt-test", messages=[{"role": "user", "content": "go"}],
                    tools=tools.chat_completions)  # type: ignore[arg-type]
                [answer] = await tools.chat_results(reply.choices[0].message)
                return result_reply(answer["content"])
            yield call_openai
            return
        assert name == "anthropic", name
        claude = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="https://api.test",
                                          max_retries=0, http_client=http)
        anthropic_tools = AnthropicTools(agent)

        async def call_anthropic(tool: str, args: dict[str, Any]) -> Reply:
            scripted.move = (tool, args)
            reply = await claude.messages.create(
                model="claude-test", max_tokens=100,
                messages=[{"role": "user", "content": "go"}],
                tools=anthropic_tools.definitions)  # type: ignore[arg-type]
            result = await anthropic_tools.tool_results(reply)
            assert result is not None
            [block] = result["content"]
            if block["is_error"]:
                return Reply(True, block["content"])
            return result_reply(block["content"])
        yield call_anthropic


def cli(setup: Setup, *args: str, stdin: int | None = subprocess.DEVNULL
        ) -> subprocess.CompletedProcess[str]:
    """The operator's ``agentflow`` command on the test's database."""
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args, "--db", setup.url],
                          capture_output=True, text=True, timeout=120, stdin=stdin,
                          env=_env(), cwd=str(REPO))


def person(action: str, content: dict[str, Any] | None = None,
           seen: list[types.ElicitRequestParams] | None = None) -> Elicitation:
    """An elicitation callback playing whoever answers the client's requests."""
    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        if seen is not None:
            seen.append(params)
        return types.ElicitResult(action=action, content=content)  # type: ignore[arg-type]
    return answer


