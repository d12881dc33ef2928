"""Small workflows used by `agentflow demo`, the README and the notebooks."""
