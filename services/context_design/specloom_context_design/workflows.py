"""The design family's registry (definition v2 follows in the next commit)."""

from __future__ import annotations

from specloom.workflow import Registry
from specloom_context_design.v1 import workflows as v1
from specloom_context_design.v1.workflows import (
    COMPONENT_DESIGN_REVIEW_V1,
    COMPONENT_DESIGN_V1,
    CONTEXT_COMPONENTS_DESIGN_V1,
    CONTEXT_DESIGN_REVIEW_V1,
    CONTEXT_DESIGN_V1,
)

REGISTRY = Registry(v1.WORKFLOWS)
"""Every design-family workflow this service serves."""

__all__ = [
    "COMPONENT_DESIGN_REVIEW_V1",
    "COMPONENT_DESIGN_V1",
    "CONTEXT_COMPONENTS_DESIGN_V1",
    "CONTEXT_DESIGN_REVIEW_V1",
    "CONTEXT_DESIGN_V1",
    "REGISTRY",
]
