"""The orchestrator: OrchestratorService for any registry of workflows.

``engine`` decides (no I/O), ``servicer`` is the thin gRPC layer over it,
``simulate`` runs the same engine in memory for golden tests, and
``conformance`` is the suite every orchestrator service must pass.
"""

from specloom.orchestration.engine import Engine
from specloom.orchestration.service import orchestrator_service
from specloom.orchestration.servicer import OrchestratorServicer

__all__ = ["Engine", "OrchestratorServicer", "orchestrator_service"]
