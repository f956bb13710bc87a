"""The Sessions service: persistence of sessions, interactions, outputs, leases and tokens.

Hosted through :data:`specloom_sessions.service.SERVICE` (``specloom serve
sessions``, ``specloom up``). Modules, one idea each:

``config``
    :class:`~specloom_sessions.config.SessionsSettings` (``SPECLOOM_SESSIONS_*``).
``tables``, ``migrations/``, ``migrate``
    The schema (SQLAlchemy Core) and the Alembic scripts that build it.
``database``
    Engine and transactions (row locks on PostgreSQL; one writer on SQLite).
``events``, ``watch``
    Change notification (LISTEN/NOTIFY or in process) and the watch streams.
``store/``
    Queries and writes by aggregate: sessions, advance (the step write),
    leases, outputs, tokens, retention.
``validation``, ``servicer``, ``tokens_servicer``
    Request checks and the thin gRPC servicers.
"""
