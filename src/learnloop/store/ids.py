"""Time-ordered UUIDs (RFC 9562 version 7), made client-side.

Made here rather than by the server so a bulk import knows every id before COPY (children
can name parents in the same batch) and so servers older than PostgreSQL 18 work too.
"""

from __future__ import annotations

import os
import time
from uuid import UUID


def uuid7() -> UUID:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return UUID(int=value)
