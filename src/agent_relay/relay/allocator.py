"""Give memory back after load: glibc's allocator keeps freed memory for reuse (a
high-water mark), so a relay that once held its budget would keep that much resident.

``tune`` caps glibc's arenas (each thread that allocates may get its own: the SQLite
driver's thread would) and fixes the size from which a block is a mapping of its own
above the largest stream chunk (a 1 MiB message): left to glibc, that threshold moves,
and a chunk that is a mapping costs a page fault per 4 KiB each time (measured: about
twice the relay's CPU per MiB downloaded at 128 KiB); from the heap, chunks are reused.
Fixing it lower bought no measurable memory under clients that do not read (bench/
relay_memory.py, where what the relay holds is its buffer budget, not fragments).
``trim_periodically``
returns free pages to the kernel every second (``malloc_trim``, which costs little when
there is nothing to give back), so the memory of a load that ended is back within about
a second. On a C library without these calls (musl), both do nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging

log = logging.getLogger(__name__)

TRIM_EVERY = 1.0  # seconds; a trim with nothing to give back costs about 0.3 ms
_M_ARENA_MAX = -8  # glibc's mallopt parameters
_M_MMAP_THRESHOLD = -3
ARENA_MAX = 2
MMAP_THRESHOLD = 2 * 1024 * 1024  # above the largest chunk: a message (1 MiB) and its frame


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


_LIBC = _libc()


def tune() -> None:
    """At most ARENA_MAX malloc arenas (as MALLOC_ARENA_MAX=2 would), and a fixed
    mmap threshold (as MALLOC_MMAP_THRESHOLD_=2097152 would)."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_ARENA_MAX, ARENA_MAX)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def trim() -> bool:
    """Return free memory to the kernel now; True if any was."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


async def trim_periodically(every: float = TRIM_EVERY) -> None:
    if _LIBC is None:
        log.debug("no malloc_trim in this C library: freed memory stays with the process")
        return
    while True:
        await asyncio.sleep(every)
        trim()
