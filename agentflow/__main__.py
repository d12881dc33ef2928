"""``python -m agentflow``: the ``agentflow`` command line."""

import sys

from agentflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
