"""An executor agent as its own process (``python -m tests.gateway.agent_process``).

Configured by ``SPECLOOM_AGENT_*`` variables, exactly as ``specloom agent``
would be; logs go to stderr so a test can read what the agent was told.
"""

from __future__ import annotations

import asyncio
import sys

from specloom.agent import AgentSettings, run_agent
from specloom.logs import configure

if __name__ == "__main__":
    configure("text", "INFO")
    sys.exit(asyncio.run(run_agent(AgentSettings())))
