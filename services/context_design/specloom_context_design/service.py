"""The context_design service: the design-family workflows behind OrchestratorService."""

from __future__ import annotations

from specloom.orchestration import orchestrator_service
from specloom_context_design.workflows import REGISTRY

SERVICE = orchestrator_service(
    name="context_design",
    summary="Design-family workflows: contexts, components, their reviews.",
    registry=REGISTRY,
)
"""Found by the host through the ``specloom.services`` entry point."""
