"""Identifiers: time-ordered UUIDs (version 7, RFC 9562).

Time order keeps new rows at the right edge of B-tree indexes and makes
"newest first" listings cheap; the random tail keeps ids unguessable enough
that they are not an enumeration aid (the scope wall is the real guard).
"""

from __future__ import annotations

import os
import time
import uuid

MAX_ID_LENGTH = 64
"""Longest id accepted from a caller; anything longer is INVALID_ARGUMENT."""


def new_id() -> str:
    """Return a new UUIDv7 as its canonical 36-character string."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a (12 bits)
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))
