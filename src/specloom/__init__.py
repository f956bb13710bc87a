"""specloom: AI-assisted software development as durable, inspectable workflows.

The shared kernel: generated protocol stubs (``specloom.v1``), the workflow
kernel (``specloom.workflow``), the orchestrator servicer base
(``specloom.orchestration``), the client SDK (``specloom.client``), the
executor agent (``specloom.agent``) and the command line (``specloom.cli``).
"""

__version__ = "0.1.0"
