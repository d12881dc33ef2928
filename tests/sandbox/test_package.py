"""The package's public face and its place in the layering (DESIGN.md section 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sandbox
from sandbox import doctor
from sandbox._landlock import abi_version
from sandbox._seccomp import available as seccomp_available

ROOT = Path(__file__).resolve().parents[2]


def test_the_public_names_are_pinned() -> None:
    assert sandbox.__all__ == [
        "DIAGNOSTIC_CODES", "CompiledPlan", "Diagnostic", "LayerStatus", "Limits",
        "MessageTooLargeError", "NonRetryableError", "PlanHost", "PlanRuntimeError",
        "PlanValidationError", "RemoteError", "SandboxError", "SandboxTimeoutError",
        "StepError", "ValidationReport", "WorkerCrashedError", "WorkerPool",
        "WorkflowTimeoutError", "compile_plan", "doctor", "place_words", "render_codes_markdown",
        "validate"]
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None


def test_the_docstring_says_what_the_sandbox_is_not() -> None:
    doc = sandbox.__doc__ or ""
    assert "Threat model" in doc
    assert "RestrictedPython is not a sandbox" in doc
    assert "Inline isolation is not a security boundary" in doc


def _top_level_modules(statement: str) -> set[str]:
    code = (f"import json, sys; {statement}; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, "
                          f"{str(ROOT)!r}); {code}"], capture_output=True, check=True,
                         text=True).stdout
    return set(json.loads(out))


def test_sandbox_is_a_leaf_importing_only_restrictedpython_and_the_stdlib() -> None:
    baseline = _top_level_modules("pass")  # whatever site's .pth files import
    loaded = _top_level_modules("import sandbox, sandbox._zygote, sandbox._worker") - baseline
    third_party = {m for m in loaded if m not in sys.stdlib_module_names
                   and not m.startswith("_")}
    assert third_party == {"RestrictedPython", "sandbox"}
    assert not loaded & {"agentflow", "pydantic", "mcp", "openai", "anthropic", "httpx"}


def test_doctor_reports_every_layer_and_all_are_available_here() -> None:
    statuses = doctor()
    assert [s.name for s in statuses] == [
        "validator", "restricted_python", "close_fds", "rlimits", "net_namespace", "setuid",
        "no_new_privs", "landlock", "seccomp", "watchdog"]
    assert all(s.detail for s in statuses)
    machine_has_all = (os.geteuid() == 0 and abi_version() > 0 and seccomp_available()[0])
    if machine_has_all:  # this project's machines: every layer works (SANDBOX.md)
        assert [s.name for s in statuses if not s.available] == []
