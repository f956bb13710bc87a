"""Queries and writes, one module per aggregate.

``sessions`` (create, read, list, children, cancel), ``advance`` (the step
write: complete, append, status, children), ``leases`` (claims, heartbeats,
joins, stalled sessions), ``outputs``, ``tokens`` and ``retention``. Every
function takes the :class:`~specloom_sessions.database.Database` and
validated arguments, raises :mod:`specloom.errors`, and knows nothing of gRPC.
"""
