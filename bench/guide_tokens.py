"""How many tokens a model reads: the prompts and the tool definitions, vs a baseline.

    python bench/guide_tokens.py [--ref REF] [--npm-dir DIR]

The baseline (default: the merge base with ``main``) is measured in the same run, from
``git archive REF`` in a temporary directory, and each text is shown with its ratio to
it. The budget for changes to the guide and the tools: within 10% of the baseline.

Counts with OpenAI's ``o200k_base`` encoding (GPT-4o and later) through ``js-tiktoken``,
whose npm package carries the encoding's ranks (Python's ``tiktoken`` downloads them
at first use, which needs network access this machine does not have). Anthropic
publishes no tokenizer for its current models; its counts are of the same order.
Installs ``js-tiktoken`` into ``DIR`` (default: a cache under the system temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Run in a subprocess with the measured tree first on sys.path: prints the texts as JSON.
TEXTS_PY = """
import json, sys
sys.path.insert(0, sys.argv[1])
from agentflow.tools import AUTHORING_TOOLS, load_prompt
from agentflow.tools._author import instructions
from agentflow.tools.anthropic import messages_tools
from agentflow.tools.openai import chat_completions_tools
print(json.dumps({
    "prompts/plan-authoring.md": load_prompt("plan-authoring"),
    "prompts/debug-instance.md": load_prompt("debug-instance"),
    "prompts/validator-codes.md": load_prompt("validator-codes"),
    "author_plan system prompt (guide + task)": instructions(),
    "tool definitions, all (Chat Completions JSON)": json.dumps(chat_completions_tools()),
    "tool definitions, authoring (Chat Completions JSON)":
        json.dumps(chat_completions_tools(AUTHORING_TOOLS)),
    "tool definitions, all (Messages JSON)": json.dumps(messages_tools()),
}))
"""

COUNT_JS = """
const { Tiktoken } = require("js-tiktoken/lite");
const ranks = require("js-tiktoken/ranks/o200k_base");
const enc = new Tiktoken(ranks.default || ranks);
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
for (const [name, text] of Object.entries(texts)) out[name] = enc.encode(text).length;
console.log(JSON.stringify(out));
"""


def texts_of(root: Path) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", TEXTS_PY, str(root)], capture_output=True,
                          text=True, check=True, cwd=root)
    return dict(json.loads(done.stdout))


def texts_at(ref: str) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return texts_of(Path(tmp))


def count(npm_dir: Path, texts: dict[str, str]) -> dict[str, int]:
    script = npm_dir / "count.cjs"
    script.write_text(COUNT_JS)
    out = subprocess.run(["node", str(script)], input=json.dumps(texts), text=True,
                         capture_output=True, check=True, cwd=npm_dir)
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npm-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "agentflow-bench-npm")
    parser.add_argument("--ref", help="baseline git ref (default: merge base with main)")
    args = parser.parse_args()
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to count tokens (js-tiktoken)")
    if not (args.npm_dir / "node_modules" / "js-tiktoken").is_dir():
        subprocess.run([npm, "install", "--prefix", str(args.npm_dir), "--no-audit",
                        "--no-fund", "js-tiktoken@1"], check=True, stdout=subprocess.DEVNULL)
    ref = args.ref or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT,
                                     capture_output=True, text=True,
                                     check=True).stdout.strip()
    now, before = texts_of(ROOT), texts_at(ref)
    counts = count(args.npm_dir, now)
    base = count(args.npm_dir, {k: v for k, v in before.items() if k in now})
    for name, tokens in counts.items():
        ratio = tokens / base[name] if base.get(name) else None
        print(json.dumps({"bench": "tokens", "encoding": "o200k_base", "what": name,
                          "tokens": tokens, "chars": len(now[name]), "baseline": ref[:12],
                          "baseline_tokens": base.get(name),
                          "ratio": round(ratio, 3) if ratio else None}))


if __name__ == "__main__":
    main()
