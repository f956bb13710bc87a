"""The coding service as a process sees it (entry point ``specloom.services``)."""

from __future__ import annotations

from specloom.orchestration import orchestrator_service
from specloom_coding.workflows import REGISTRY

SERVICE = orchestrator_service(
    name="coding",
    summary="Coding-family workflows: tests first, then code, per component and per context.",
    registry=REGISTRY,
)
