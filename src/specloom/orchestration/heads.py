"""The orchestrator's cache of session heads (see :class:`HeadCache`)."""

from __future__ import annotations

from collections import OrderedDict

from specloom.orchestration.writes import Decoded
from specloom.v1 import common_pb2 as pb

FINISHED = frozenset(
    {pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED}
)


class HeadCache:
    """Recently written session heads, newest last (an LRU), with their decoded values."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._heads: OrderedDict[str, tuple[pb.Session, Decoded | None]] = OrderedDict()

    def get(self, scope: pb.Scope, session_id: str) -> pb.Session | None:
        entry = self.entry(scope, session_id)
        return entry[0] if entry is not None else None

    def entry(self, scope: pb.Scope, session_id: str) -> tuple[pb.Session, Decoded | None] | None:
        """The cached head and its decoded values, if cached for this scope."""
        entry = self._heads.get(session_id)
        if entry is None:
            return None
        head = entry[0]
        # The cache must not become a way around the scope wall.
        if (head.scope.account_id, head.scope.project_id) != (scope.account_id, scope.project_id):
            return None
        self._heads.move_to_end(session_id)
        return entry

    def decoded(self, head: pb.Session) -> Decoded | None:
        """The decoded values kept for exactly this head version, if any."""
        entry = self._heads.get(head.id)
        if entry is None or entry[1] is None or entry[1].version != head.version:
            return None
        return entry[1]

    def put(self, head: pb.Session, decoded: Decoded | None = None) -> None:
        if self._size <= 0:
            return
        if head.status in FINISHED:
            # A finished session takes no more steps (a resume re-reads it),
            # so its head would only sit here until evicted: kept, 10,000
            # heads with their state and decoded values held 100+ MB, and
            # the soak saw every orchestrator grow by the sessions it ended.
            self._heads.pop(head.id, None)
            return
        self._heads[head.id] = (head, decoded)
        self._heads.move_to_end(head.id)
        while len(self._heads) > self._size:
            self._heads.popitem(last=False)

    def offer(self, head: pb.Session) -> None:
        """Keep ``head`` unless a newer version of it is kept already.

        For heads learned on the side (a spawn returns its children): by the
        time the response arrives, a child may already have moved on here.
        """
        kept = self._heads.get(head.id)
        if kept is None or kept[0].version < head.version:
            self.put(head)

    def drop(self, session_id: str) -> None:
        self._heads.pop(session_id, None)
