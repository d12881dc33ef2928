"""One error tree: every error agentflow hands its users is an `AgentflowError`,
importable from `agentflow.errors`, and the old import places name the same classes."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import agentflow
import sandbox
from agentflow import AgentFlow, AgentflowError, errors
from agentflow.store import PlanRow

BAD_PLAN = "async def run(event, step):\n    import os\n    return os.getcwd()\n"


def test_every_public_error_is_in_the_tree() -> None:
    names = [n for n in errors.__all__ if n.endswith("Error")]
    assert {"PlanNotFoundError", "PlanValidationError", "CapabilityError",
            "HumanOnlyEventError", "CommitOutcomeUnknownError"} <= set(names)
    for name in names:
        cls = getattr(errors, name)
        assert inspect.isclass(cls) and issubclass(cls, AgentflowError), name
    for name in agentflow.__all__:
        value = getattr(agentflow, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert issubclass(value, AgentflowError), name
            assert getattr(errors, name) is value, name


def test_old_import_places_name_the_same_classes() -> None:
    from agentflow.agents import PlanNotFoundError, PlanValidationError
    from agentflow.capabilities import CapabilityError
    from agentflow.plans import PlanNotFoundError as plans_not_found
    from agentflow.tools import HumanOnlyEventError

    assert PlanNotFoundError is plans_not_found is errors.PlanNotFoundError
    assert PlanValidationError is errors.PlanValidationError is agentflow.PlanValidationError
    assert CapabilityError is errors.CapabilityError
    assert HumanOnlyEventError is errors.HumanOnlyEventError
    from agentflow.store.postgres import CommitOutcomeUnknownError

    assert CommitOutcomeUnknownError is errors.CommitOutcomeUnknownError
    assert issubclass(errors.PlanValidationError, sandbox.PlanValidationError)
    assert issubclass(errors.PlanValidationError, errors.InvalidArgumentError)


def test_importing_the_errors_does_not_import_the_sandbox() -> None:
    code = ("import sys, agentflow.errors\n"
            "print(any(m == 'sandbox' or m.startswith('sandbox.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


async def test_except_agentflow_error_catches_a_rejected_plan(af: AgentFlow) -> None:
    agent = af.agent("a1")
    with pytest.raises(AgentflowError) as caught:
        await agent.submit_plan("bad", BAD_PLAN)
    assert isinstance(caught.value, errors.PlanValidationError)
    assert isinstance(caught.value, sandbox.PlanValidationError)  # still the sandbox's too
    assert caught.value.report.diagnostics and not caught.value.report.ok
    assert await agent.plans() == []


async def test_a_stored_plan_that_no_longer_validates_raises_the_agentflow_error(
        af: AgentFlow) -> None:
    # A version stored before validation tightened: loading it is a rejected plan too.
    await af.engine.store.put_plan_version(PlanRow(
        scope="a1", name="old", version="0123456789abcdef", source=BAD_PLAN,
        created_at=af.engine.clock.now(), created_by="a1", current=True))
    with pytest.raises(AgentflowError) as caught:
        await af.compiled("a1", "old", "0123456789abcdef")
    assert isinstance(caught.value, errors.PlanValidationError)
    with pytest.raises(errors.PlanNotFoundError):
        await af.compiled("a1", "old", "fedcba9876543210")
