"""How many tokens a model reads: the prompts and the tool definitions.

    python bench/guide_tokens.py [--npm-dir DIR]

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agentflow.tools import AUTHORING_TOOLS, load_prompt
from agentflow.tools._author import instructions
from agentflow.tools.anthropic import messages_tools
from agentflow.tools.openai import chat_completions_tools

COUNT_JS = """
const { Tiktoken } = require("js-tiktoken/lite");
const ranks = require("js-tiktoken/ranks/o200k_base");
const enc = new Tiktoken(ranks.default || ranks);
const texts = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = {};
for (const [name, text] of Object.entries(texts)) out[name] = enc.encode(text).length;
console.log(JSON.stringify(out));
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npm-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "agentflow-bench-npm")
    args = parser.parse_args()
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to count tokens (js-tiktoken)")
    if not (args.npm_dir / "node_modules" / "js-tiktoken").is_dir():
        subprocess.run([npm, "install", "--prefix", str(args.npm_dir), "--no-audit",
                        "--no-fund", "js-tiktoken@1"], check=True, stdout=subprocess.DEVNULL)
    texts = {
        "prompts/plan-authoring.md": load_prompt("plan-authoring"),
        "prompts/debug-instance.md": load_prompt("debug-instance"),
        "prompts/validator-codes.md": load_prompt("validator-codes"),
        "author_plan system prompt (guide + task)": instructions(),
        "tool definitions, all 15 (Chat Completions JSON)": json.dumps(chat_completions_tools()),
        "tool definitions, authoring 5 (Chat Completions JSON)":
            json.dumps(chat_completions_tools(AUTHORING_TOOLS)),
        "tool definitions, all 15 (Messages JSON)": json.dumps(messages_tools()),
    }
    script = args.npm_dir / "count.cjs"
    script.write_text(COUNT_JS)
    out = subprocess.run(["node", str(script)], input=json.dumps(texts), text=True,
                         capture_output=True, check=True, cwd=args.npm_dir)
    counts = json.loads(out.stdout)
    for name, tokens in counts.items():
        print(json.dumps({"bench": "tokens", "encoding": "o200k_base", "what": name,
                          "tokens": tokens, "chars": len(texts[name])}))


if __name__ == "__main__":
    main()
