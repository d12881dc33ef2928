"""``approve`` over MCP: a person decides through elicitation, in the resolver form.

``ctx.elicit()`` cannot ask anything on the stateless 2026-07-28 protocol, so the person
is asked by a resolver (``Annotated[..., Resolve(fn)]``): the SDK sends the question
mid-call on 2025-11-25 and as an ``input_required`` round on 2026-07-28, and runs the
tool body once the answer is in. The answer rides the SDK's authenticated request
state, pinned to the exact question shown, so a client cannot pre-fill or replay one.

Two resolvers: ``lookup`` reads what the instance waits for (from the store, never from
the agent), and ``ask_person`` turns it into the question, or into `NoPerson` when
there is nothing to ask, the operator set ``approvals = operator-only`` (read from the
database), or the client did not declare form elicitation (asking anyway would be a
protocol error). The question is `ApprovalRequest.message()`, the same record every
surface renders, and the form is an explicit approve/reject choice. The body then runs
the shared handler with an ``ask_human`` that hands over the person's answer together
with the request they saw; the handler re-reads the instance and sends nothing if it
changed. Any failure on the way sends nothing: approval never fails open.

This module does not use ``from __future__ import annotations``: the SDK reads the
resolvers' annotations with ``get_type_hints``, which cannot see closure variables.
"""

import functools
import inspect
from dataclasses import dataclass
from typing import Annotated, Any

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    Resolve,
)
from mcp_types import CallToolResult
from pydantic import ConfigDict

from agentflow.errors import AgentflowError
from agentflow.tools import (
    TOOLS,
    ApprovalRequest,
    HumanAnswer,
    HumanDecision,
    ToolContext,
    approval_request,
    call_tool,
    policy_of,
)
from mcp_server._identity import Identity
from mcp_server._tools import set_signature, signature_parameters, to_call_tool_result

__all__ = ["NoPerson", "approve_function"]


@dataclass(frozen=True)
class Lookup:
    """What ``lookup`` found: the request a person would see, or None (the handler then
    reports why, with the same error it gives everywhere)."""

    request: ApprovalRequest | None


@dataclass(frozen=True)
class NoPerson:
    """``ask_person``'s answer when no person can be asked."""


@functools.lru_cache(maxsize=256)
def decision_form(ref: str) -> type[HumanDecision]:
    """The form for one wait: `HumanDecision`, with the wait's reference as the schema's
    ``$comment`` (an annotation no client shows).

    On 2026-07-28 the SDK reuses a recorded answer when the question is asked again
    with the same rendering, and a restarted instance can wait at the same step with
    the same deadline: the reference makes the new wait's question a new question, so
    an answer about the old run is never reused for the new one. A person does not
    read it (a meaningless "request 3b4a0caad728" in the dialog told them nothing).
    """
    return type("ApprovalDecision", (HumanDecision,), {"model_config": ConfigDict(
        extra="forbid", strict=True, title="Your decision",
        json_schema_extra={"$comment": f"agentflow wait {ref}"})})


def client_can_elicit(ctx: Context) -> bool:
    """Whether the client declared form elicitation (a bare ``elicitation: {}`` counts)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def approve_function(identity: Identity) -> Any:
    """The MCP tool function of ``approve`` for one server."""
    human_only = identity.config.human_only

    async def lookup(instance_id: str, note: str, step: str | None = None) -> Lookup:
        try:
            agent = identity.agent()
            policy = await policy_of(agent)
            if policy.approvals == "operator-only":
                return Lookup(None)  # never elicit: the handler says how a person answers
            return Lookup(await approval_request(agent, instance_id, note,
                                                 human_only | policy.human_only, step))
        except AgentflowError:
            return Lookup(None)

    async def ask_person(found: Annotated[Lookup, Resolve(lookup)], ctx: Context
                         ) -> Elicit[HumanDecision] | NoPerson:
        if found.request is None or not client_can_elicit(ctx):
            return NoPerson()
        return Elicit(found.request.message(), decision_form(found.request.ref))

    async def approve(ctx: Context, found: Lookup, answer: ElicitationResult[HumanDecision],
                      **arguments: Any) -> CallToolResult:
        async def ask_human(request: ApprovalRequest) -> HumanAnswer | None:
            if found.request is None:
                return None
            if isinstance(answer, AcceptedElicitation):
                if not isinstance(answer.data, HumanDecision):
                    return None  # NoPerson: nobody was asked
                return HumanAnswer(action="accept", decision=answer.data,
                                   request=found.request)
            return HumanAnswer(action=answer.action, request=found.request)

        context = ToolContext(human_only=human_only, ask_human=ask_human)
        return to_call_tool_result(await call_tool(identity.agent(), "approve", arguments,
                                                   context))

    spec = TOOLS["approve"]
    params = signature_parameters(spec.args_model)
    kw = inspect.Parameter.KEYWORD_ONLY
    params += [
        inspect.Parameter("ctx", kw, annotation=Context),
        inspect.Parameter("found", kw, annotation=Annotated[Lookup, Resolve(lookup)]),
        inspect.Parameter("answer", kw, annotation=Annotated[
            ElicitationResult[HumanDecision], Resolve(ask_person)]),
    ]
    set_signature(approve, "approve", params, spec.result_model)
    return approve
