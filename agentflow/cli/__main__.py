import sys

from agentflow.cli import main

sys.exit(main())
