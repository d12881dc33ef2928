"""The validator's diagnostic codes: one table, the single source for docs and prompts.

`prompts/validator-codes.md` is generated from `DIAGNOSTIC_CODES` by
`render_codes_markdown()`; a test keeps the two in sync. Codes are stable: a code is
never reused for a different meaning. Families:

- ``AF0xx`` the input itself: type, size, syntax, nesting, node count
- ``AF1xx`` module shape: top-level statements and the ``run`` entry point
- ``AF2xx`` ``step.*`` calls
- ``AF3xx`` statements and constructs plans may not use
- ``AF4xx`` names and attributes
- ``AF5xx`` exception handling

Retired: AF408 (``print`` refused); ``print`` is allowed and its output is kept as the
plan's log.
"""

from __future__ import annotations

__all__ = ["DIAGNOSTIC_CODES", "render_codes_markdown"]

DIAGNOSTIC_CODES: dict[str, tuple[str, str]] = {
    "AF000": ("internal validator error",
              "This is a bug in the validator; simplify the plan and report it."),
    "AF001": ("source is not text",
              "Submit the plan as a Python source string."),
    "AF002": ("source too large",
              "Keep a plan under the size limit: move data into the event payload or "
              "into step results instead of literals."),
    "AF003": ("syntax error",
              "Fix the Python syntax at the reported position."),
    "AF004": ("nesting too deep",
              "Flatten deeply nested expressions or blocks into helper functions "
              "and intermediate variables."),
    "AF005": ("too many syntax nodes",
              "Split the work into fewer, simpler statements or move data out of "
              "literals."),
    "AF006": ("rejected by the restricted compiler",
              "Rewrite the construct named in the message; it is not allowed in plans."),
    "AF101": ("top-level statement not allowed",
              "At top level use only function definitions (`def`, `async def`) and "
              "constant assignments such as `LIMIT = 10`; put logic inside `run`."),
    "AF102": ("missing `async def run(event, step)`",
              "Define the entry point exactly as `async def run(event, step):`."),
    "AF103": ("wrong signature for `run`",
              "Write `async def run(event, step):` with exactly those two parameters, "
              "no defaults and no decorators."),
    "AF104": ("name defined twice at top level",
              "Give each top-level function and constant a distinct name."),
    "AF105": ("decorator not allowed",
              "Remove the decorator; call helper functions explicitly instead."),
    "AF106": ("top-level value is not a constant",
              "Assign only literals at top level (numbers, strings, lists, dicts of "
              "literals); compute values inside `run` or in a step."),
    "AF201": ("step call not awaited",
              "Write `await step.do(...)`; to run several steps at once use "
              "`await gather(step.do(...), step.do(...))`."),
    "AF202": ("step name is not a literal",
              "Pass the step name as a string literal or an f-string, e.g. "
              "`await step.do(\"fetch\", ...)` or `step.do(f\"fetch {i}\", ...)`."),
    "AF203": ("unknown step method",
              "Use one of step.do, step.sleep, step.sleep_until, step.wait_for_event, "
              "step.now, step.random, step.uuid."),
    "AF204": ("step used other than by calling it",
              "Call step methods directly (`await step.do(...)`); do not store "
              "`step` or its methods in other variables."),
    "AF205": ("step call without a name",
              "Give the step a name as its first argument: `await step.sleep(\"pause\", "
              "\"1 hour\")`."),
    "AF206": ("step name holds an unprintable character",
              "Write step and wait names in printable text: no control characters "
              "(newlines, NUL, ANSI escapes), zero-width or bidirectional marks."),
    "AF207": ("wrong arguments to a step method",
              "Pass what the method takes, e.g. `step.do(\"x\", lambda: ...)`."),
    "AF208": ("lambda run later reads a loop variable",
              "Bind it when the lambda is made: `lambda i=i: work(i)`."),
    "AF301": ("import not allowed",
              "Remove the import; use what plans provide (json_dumps, json_loads, "
              "gather, env.*)."),
    "AF302": ("class definition not allowed",
              "Use dicts and functions instead of classes."),
    "AF303": ("global or nonlocal not allowed",
              "Return values from functions instead of rebinding outer variables."),
    "AF304": ("generator not allowed",
              "Build and return a list instead of using `yield`."),
    "AF305": ("async iteration, async with or async comprehension not allowed",
              "Use a plain `for` loop with `await` inside it, or "
              "`await gather(*[step.do(f\"{x}\", lambda x=x: f(x)) for x in items])`."),
    "AF306": ("match statement not allowed",
              "Use `if`/`elif` chains instead of `match`."),
    "AF307": ("with statement not allowed",
              "No context managers are available in plans; remove the `with` block."),
    "AF308": ("try/except* not allowed",
              "Use a plain `try`/`except`."),
    "AF401": ("nondeterministic name",
              "Plans are replayed and must be deterministic: use `await step.now()`, "
              "`await step.random()` or `await step.uuid()`."),
    "AF402": ("forbidden name",
              "This name gives access to the interpreter or the host and is not "
              "available in plans."),
    "AF403": ("name starts with an underscore",
              "Rename it without a leading underscore; underscore names are reserved."),
    "AF404": ("attribute starts with an underscore",
              "Underscore and dunder attributes are not accessible in plans."),
    "AF405": ("introspection attribute",
              "Frame, code and traceback attributes are not accessible in plans."),
    "AF406": ("str.format is not allowed",
              "Use an f-string: `f\"{name}: {count}\"`."),
    "AF407": ("undefined name",
              "Define the name, or use one that plans provide (event, step, env, "
              "gather, json_dumps, json_loads, the error classes and safe builtins)."),
    "AF409": ("capability or method not granted",
              "Use a granted capability (`describe_capabilities`)."),
    "AF501": ("bare except",
              "Catch a specific error, e.g. `except StepError as err:` or "
              "`except Exception:`."),
    "AF502": ("catching a control-flow exception",
              "Do not catch BaseException, SystemExit, KeyboardInterrupt or "
              "GeneratorExit; catch `Exception` or a narrower class."),
}


def render_codes_markdown() -> str:
    """Render `DIAGNOSTIC_CODES` as the markdown table shipped in `prompts/`."""
    lines = [
        "# Plan validator codes",
        "",
        "Every finding of `validate(source)` carries one of these codes, its line and "
        "column, and a hint. Generated from `sandbox.DIAGNOSTIC_CODES`; do not edit by hand.",
        "",
        "| code | problem | how to fix it |",
        "|---|---|---|",
    ]
    for code, (title, hint) in DIAGNOSTIC_CODES.items():
        escaped = hint.replace("|", "\\|")
        lines.append(f"| {code} | {title} | {escaped} |")
    return "\n".join(lines) + "\n"
