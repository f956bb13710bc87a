"""Alembic scripts of the Sessions schema (run through specloom_sessions.migrate)."""
