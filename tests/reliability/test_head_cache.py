"""The orchestrator's head cache keeps sessions that can still step, and nothing else.

The soak (``bench/soak.py``) found every orchestrator growing by the
sessions it had finished: their heads stayed cached until 10,000 of them
pushed the oldest out. Finished heads are not kept now, so the cache (and
memory) is bounded by the sessions in flight.
"""

from __future__ import annotations

from specloom.orchestration.heads import HeadCache
from specloom.v1 import common_pb2 as pb

SCOPE = pb.Scope(account_id="acme", project_id="alpha", user_id="alice")


def _head(session_id: str, status: int, version: int = 1) -> pb.Session:
    return pb.Session(id=session_id, status=status, version=version, scope=SCOPE)  # type: ignore[arg-type]


def test_finished_sessions_leave_the_cache() -> None:
    cache = HeadCache(size=100)
    for index in range(50):
        cache.put(_head(f"s{index}", pb.SESSION_STATUS_ACTIVE))
    assert cache.get(SCOPE, "s7") is not None
    for status in (
        pb.SESSION_STATUS_COMPLETE,
        pb.SESSION_STATUS_FAILED,
        pb.SESSION_STATUS_CANCELLED,
    ):
        cache.put(_head("s7", status, version=2))
        assert cache.get(SCOPE, "s7") is None
    # A paused session is resumed without a re-read; it stays.
    cache.put(_head("s8", pb.SESSION_STATUS_PAUSED, version=2))
    assert cache.get(SCOPE, "s8") is not None
    for index in range(50):
        cache.put(_head(f"s{index}", pb.SESSION_STATUS_COMPLETE, version=3))
    assert all(cache.get(SCOPE, f"s{index}") is None for index in range(50))
