"""Orchestrator settings (environment ``SPECLOOM_ORCHESTRATOR_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OrchestratorSettings(BaseSettings):
    """How an orchestrator batches its Sessions writes and caches session heads."""

    model_config = SettingsConfigDict(env_prefix="SPECLOOM_ORCHESTRATOR_", extra="ignore")

    head_cache_size: int = Field(default=10_000, ge=0)
    """Session heads kept after writing them (0 disables); saves a read per step."""
    advance_batch_max: int = Field(default=256, ge=1, le=1000)
    """Most step writes carried by one ``AdvanceSessions`` call."""
    advance_batches_in_flight: int = Field(default=1, ge=1, le=64)
    """``AdvanceSessions`` calls out at once from this process. One keeps the
    Sessions batches large (their per-call and per-transaction cost is the
    largest per-step cost); more helps only when Sessions has cores to spare."""
