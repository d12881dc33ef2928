"""The authoring loop: a model drafts a plan, reads the diagnostics, fixes, submits, starts.

`author_plan` (sync clients) and `author_plan_async` (async clients) drive one
conversation with an OpenAI (Chat Completions or Responses) or Anthropic (Messages)
client. The model gets the plan-authoring guide as its instructions and agentflow's
authoring tools; every tool call runs through the same handlers as the MCP server, so
the validator's diagnostics come back as tool results it can act on. The loop ends when
the model answers without calling a tool, or after ``max_turns`` model requests.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentflow.errors import UsageError
from agentflow.plans import Agent
from agentflow.tools import anthropic as anthropic_tools
from agentflow.tools import openai as openai_tools
from agentflow.tools._context import ToolContext
from agentflow.tools._prompts import load_prompt
from agentflow.tools._registry import ToolOutcome
from agentflow.tools._sync import as_agent, run_sync, sync_loop
from agentflow.tools._toolbox import (
    AUTHORING_TOOLS,
    Toolbox,
    is_async_sdk_client,
    result_content,
    sdk_of,
)
from agentflow.tools._toolbox import field as get

if TYPE_CHECKING:
    from agentflow.plans import SyncAgent

__all__ = ["AuthoringResult", "ToolCallRecord", "author_plan", "author_plan_async"]

Api = Literal["chat", "responses", "messages"]


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call the model made, and what it got back."""

    turn: int
    tool: str
    arguments: Any
    is_error: bool
    content: str


@dataclass
class AuthoringResult:
    """What the authoring loop achieved.

    Attributes:
        ok: the model submitted a valid plan and started an instance of that very
            plan version (starting some other plan the agent had does not count).
        plan: the name of the last plan it submitted successfully.
        version: that plan version.
        instance_id: the instance it started last, if any.
        turns: model requests made.
        final_text: the model's last words.
        reason: why the loop stopped.
        calls: every tool call, in order, with its result.
        diagnostics: the validator's codes, per rejected validate/submit, in order.
    """

    ok: bool = False
    plan: str | None = None
    version: str | None = None
    instance_id: str | None = None
    turns: int = 0
    final_text: str = ""
    reason: str = ""
    calls: list[ToolCallRecord] = field(default_factory=list)
    diagnostics: list[list[str]] = field(default_factory=list)
    #: (plan, version) of the instance started last.
    started: tuple[str, str] | None = None

    def record(self, turn: int, outcome: ToolOutcome, arguments: Any) -> None:
        self.calls.append(ToolCallRecord(turn, outcome.tool, arguments, outcome.is_error,
                                         result_content(outcome)))
        result = outcome.result
        if result is None:
            return
        if outcome.tool in ("validate_plan", "submit_plan") and not getattr(result, "ok", True):
            self.diagnostics.append([d.code for d in getattr(result, "diagnostics", [])])
        if outcome.tool == "submit_plan" and getattr(result, "ok", False):
            plan = result.plan  # type: ignore[attr-defined]
            self.plan, self.version = plan.name, plan.version
        if outcome.tool == "start_instance":
            info = result.instance  # type: ignore[attr-defined]
            self.instance_id, self.started = info.id, (info.plan, info.version)


def instructions(guide: str | None = None) -> str:
    """The system prompt: the plan-authoring guide and how to work with the tools."""
    return (guide if guide is not None else load_prompt("plan-authoring")) + """

## Your task

You write and run durable agentflow plans with the tools you have. Draft the plan, call
`validate_plan` and fix every diagnostic (each has a code and a fix hint), then
`submit_plan`, then `start_instance`. When the instance is started, answer with one or
two sentences that name the instance id; do not call more tools after that.
"""


def goal_message(goal: str, plan_name: str | None, params: dict[str, Any] | None) -> str:
    text = f"Goal: {goal}"
    if plan_name:
        text += f"\nSubmit the plan under the name {plan_name!r}."
    if params is not None:
        text += f"\nStart it with these params: {json.dumps(params)}"
    return text


class _Conversation:
    """One API's message bookkeeping; the loops below only call the client and tools."""

    def __init__(self, api: Api, model: str, system: str, user: str,
                 toolbox: Toolbox, max_tokens: int, options: dict[str, Any]) -> None:
        self.api, self.model, self.toolbox = api, model, toolbox
        self.system, self.max_tokens, self.options = system, max_tokens, options
        self.items: list[Any] = [{"role": "user", "content": user}]

    def request(self) -> dict[str, Any]:
        names = self.toolbox.names
        if self.api == "chat":
            return {"model": self.model, "tools": openai_tools.chat_completions_tools(names),
                    "messages": [{"role": "system", "content": self.system}, *self.items],
                    **self.options}
        if self.api == "responses":
            return {"model": self.model, "tools": openai_tools.responses_tools(names),
                    "instructions": self.system, "input": list(self.items), **self.options}
        return {"model": self.model, "tools": anthropic_tools.messages_tools(names),
                "system": self.system, "messages": list(self.items),
                "max_tokens": self.max_tokens, **self.options}

    def absorb(self, reply: Any) -> tuple[list[tuple[str, str, Any]], str]:
        """Take a reply in; the tool calls it asks for ``(call id, name, arguments)``
        and its text."""
        if self.api == "chat":
            message = get(reply, "choices")[0]
            message = get(message, "message")
            self.items.append(openai_tools.assistant_message(message))
            calls = [(get(c, "id"), get(get(c, "function"), "name"),
                      get(get(c, "function"), "arguments"))
                     for c in get(message, "tool_calls") or []]
            return calls, get(message, "content") or ""
        if self.api == "responses":
            texts, calls = [], []
            for item in get(reply, "output") or []:
                kind = get(item, "type")
                self.items.append(item if isinstance(item, dict) else
                                  item.model_dump(exclude_none=True))
                if kind == "function_call":
                    calls.append((get(item, "call_id"), get(item, "name"),
                                  get(item, "arguments")))
                elif kind == "message":
                    texts += [get(c, "text") or "" for c in get(item, "content") or []]
            return calls, "".join(texts)
        self.items.append(anthropic_tools.assistant_message(reply))
        blocks = get(reply, "content") or []
        calls = [(get(b, "id"), get(b, "name"), get(b, "input")) for b in blocks
                 if get(b, "type") == "tool_use"]
        text = "".join(get(b, "text") or "" for b in blocks if get(b, "type") == "text")
        return calls, text

    def answer(self, results: list[tuple[str, ToolOutcome]]) -> None:
        if self.api == "chat":
            self.items += [{"role": "tool", "tool_call_id": call_id,
                            "content": result_content(o)} for call_id, o in results]
        elif self.api == "responses":
            self.items += [{"type": "function_call_output", "call_id": call_id,
                            "output": result_content(o)} for call_id, o in results]
        else:
            self.items.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": call_id, "content": result_content(o),
                 "is_error": o.is_error} for call_id, o in results]})


def _api_of(client: Any, api: Api | None) -> Api:
    module = sdk_of(client)
    if module == "anthropic" or (hasattr(client, "messages") and not hasattr(client, "chat")):
        if api not in (None, "messages"):
            raise UsageError(f"an Anthropic client speaks the Messages API, not {api!r}")
        return "messages"
    if hasattr(client, "chat") or hasattr(client, "responses"):
        if api not in (None, "chat", "responses"):
            raise UsageError(f"an OpenAI client speaks 'chat' or 'responses', not {api!r}")
        return api or "chat"
    raise UsageError(f"author_plan needs an OpenAI or Anthropic client, got "
                     f"{type(client).__name__}")


def _is_async(client: Any, create: Any) -> bool:
    """Whether the client's calls are coroutines (the SDKs wrap ``create``, so an SDK
    client's class decides)."""
    if sdk_of(client) is not None:
        return is_async_sdk_client(client)
    return inspect.iscoroutinefunction(create)


def _create(client: Any, api: Api) -> Any:
    if api == "chat":
        return client.chat.completions.create
    if api == "responses":
        return client.responses.create
    return client.messages.create


def _setup(client: Any, model: str, agent: Agent, goal: str, *, api: Api | None,
           plan_name: str | None, params: dict[str, Any] | None, tools: Iterable[str] | None,
           context: ToolContext | None, guide: str | None, max_tokens: int,
           request_options: dict[str, Any] | None, max_turns: int, want_async: bool
           ) -> tuple[_Conversation, Any]:
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise UsageError(f"max_turns must be a whole number of model requests >= 1, "
                         f"got {max_turns!r}")
    # Before any (paid) model request: the agent's AgentFlow must be usable from here.
    if want_async:
        if agent.flow.loop is None:
            raise UsageError("the agent's AgentFlow is not started: use `async with af:`")
    else:
        sync_loop(agent)
    chosen = _api_of(client, api)
    create = _create(client, chosen)
    if _is_async(client, create) != want_async:
        raise UsageError("author_plan takes a sync client (openai.OpenAI, anthropic.Anthropic);"
                         " use author_plan_async with an async one" if not want_async else
                         "author_plan_async takes an async client (openai.AsyncOpenAI, "
                         "anthropic.AsyncAnthropic); use author_plan with a sync one")
    toolbox = Toolbox(agent, tools=AUTHORING_TOOLS if tools is None else tools,
                      context=context)
    conversation = _Conversation(chosen, model, instructions(guide),
                                 goal_message(goal, plan_name, params), toolbox, max_tokens,
                                 dict(request_options or {}))
    return conversation, create


def _finish(result: AuthoringResult, text: str | None, max_turns: int) -> AuthoringResult:
    result.ok = (result.plan is not None
                 and result.started == (result.plan, result.version))
    if text is None:
        result.reason = f"stopped after max_turns={max_turns} model requests"
    else:
        result.final_text = text
        result.reason = "the model finished" if result.ok else \
            "the model finished without starting an instance of a valid plan"
    return result


async def _converse(conversation: _Conversation, create: Callable[..., Awaitable[Any]],
                    max_turns: int) -> AuthoringResult:
    """The authoring loop, on the AgentFlow's event loop: ask the model, run the tools
    it calls, answer, until it calls none or ``max_turns`` requests were made."""
    result = AuthoringResult()
    for turn in range(1, max_turns + 1):
        result.turns = turn
        calls, text = conversation.absorb(await create(**conversation.request()))
        if not calls:
            return _finish(result, text, max_turns)
        answers = []
        for call_id, name, arguments in calls:
            outcome = await conversation.toolbox.run(name, arguments)
            result.record(turn, outcome, arguments)
            answers.append((call_id, outcome))
        conversation.answer(answers)
    return _finish(result, None, max_turns)


async def author_plan_async(client: Any, model: str, agent: Agent, goal: str, *,
                            api: Api | None = None, plan_name: str | None = None,
                            params: dict[str, Any] | None = None, max_turns: int = 8,
                            tools: Iterable[str] | None = None,
                            context: ToolContext | None = None, guide: str | None = None,
                            max_tokens: int = 4096,
                            request_options: dict[str, Any] | None = None
                            ) -> AuthoringResult:
    """Have a model write, fix, submit and start a plan for ``goal``, as ``agent``.

    Args:
        client: ``openai.AsyncOpenAI`` or ``anthropic.AsyncAnthropic``.
        model: the model name.
        agent: the agent the plan belongs to (its AgentFlow must be started).
        goal: what the plan should do, in words.
        api: ``"chat"`` (default for OpenAI) or ``"responses"``; Anthropic is
            ``"messages"``.
        plan_name: a name to submit under (the model picks one otherwise).
        params: the params to start the instance with.
        max_turns: at most this many model requests.
        tools: the tools offered (default: validate, submit, list plans, start, get).
        context: the operator's rules for the tools.
        guide: instructions to use instead of the shipped plan-authoring guide.
        max_tokens: the reply cap (the Messages API requires one).
        request_options: more keyword arguments for every ``create`` call.

    Returns:
        An `AuthoringResult`: ``ok`` when an instance of a valid plan was started.
    """
    conversation, create = _setup(client, model, agent, goal, api=api, plan_name=plan_name,
                                  params=params, tools=tools, context=context, guide=guide,
                                  max_tokens=max_tokens, request_options=request_options,
                                  max_turns=max_turns, want_async=True)
    return await _converse(conversation, create, max_turns)


def author_plan(client: Any, model: str, agent: Agent | SyncAgent, goal: str, *,
                api: Api | None = None, plan_name: str | None = None,
                params: dict[str, Any] | None = None, max_turns: int = 8,
                tools: Iterable[str] | None = None, context: ToolContext | None = None,
                guide: str | None = None, max_tokens: int = 4096,
                request_options: dict[str, Any] | None = None) -> AuthoringResult:
    """`author_plan_async` for a sync client (``openai.OpenAI``, ``anthropic.Anthropic``).

    The agent's AgentFlow runs on an event loop in another thread, e.g.
    ``with AgentFlow(url).in_thread() as af:``.

    Example:
        with AgentFlow("sqlite:///agentflow.db").in_thread() as af:
            result = author_plan(openai.OpenAI(), "gpt-4.1", af.agent("a1"),
                                 "every morning, summarize the open issues of a repo")
            print(result.ok, result.instance_id, result.diagnostics)
    """
    agent = as_agent(agent)  # a SyncAgent of `AgentFlow.in_thread()` too
    conversation, create = _setup(client, model, agent, goal, api=api, plan_name=plan_name,
                                  params=params, tools=tools, context=context, guide=guide,
                                  max_tokens=max_tokens, request_options=request_options,
                                  max_turns=max_turns, want_async=False)

    def call_model(**request: Any) -> Awaitable[Any]:
        # The sync client blocks: it runs in a worker thread, off the AgentFlow's loop.
        return asyncio.to_thread(create, **request)

    return run_sync(agent, _converse(conversation, call_model, max_turns))
