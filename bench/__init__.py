"""The benchmark harness: specloom against the physical limit and its peers.

``make bench`` runs ``python -m bench``: pgbench's single-row-update ceiling,
DBOS and LangGraph on the same PostgreSQL, and specloom's step overhead,
growth and scale, written to ``docs/performance.md`` and ``bench/out/``.
See :mod:`bench.measure` for what a step is and how it is timed.
"""
