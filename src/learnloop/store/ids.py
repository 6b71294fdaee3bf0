"""Time-ordered UUIDs (RFC 9562 version 7), made client-side.

Made here rather than by the server so a bulk import knows every id before COPY (children
can name parents in the same batch) and so servers older than PostgreSQL 18 work too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from uuid import UUID

_MS_MASK = (1 << 48) - 1
_LOW_62 = (1 << 62) - 1


def _pack(ms: int, rand: int) -> UUID:
    """48-bit unix ms, version 7, 12 random bits, variant 0b10, 62 random bits."""
    return UUID(int=((ms & _MS_MASK) << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64)
                | (0b10 << 62) | (rand & _LOW_62))


def uuid7() -> UUID:
    return _pack(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7s(n: int) -> Iterator[UUID]:
    """n UUIDv7s from one read of the OS's randomness (bulk imports: one syscall, not n)."""
    ms = time.time_ns() // 1_000_000
    rand = os.urandom(10 * n)
    for i in range(0, 10 * n, 10):
        yield _pack(ms, int.from_bytes(rand[i:i + 10], "big"))
