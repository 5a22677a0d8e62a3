"""Keep the batch jobs' resident memory at their working set rather than at the high-water mark.

Polars allocates through its own jemalloc (configured by ``_RJEM_MALLOC_CONF``, read once when Polars is
loaded): by default it keeps freed pages for seconds, so each day's frames stacked up in RSS. The ADBC
driver allocates with glibc malloc, whose heap keeps freed memory until trimmed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["configure_allocators", "release_memory"]

_libc: ctypes.CDLL | None = None


def configure_allocators() -> None:
    """Ask Polars' jemalloc to return freed pages at once; must run before Polars is imported."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


def release_memory() -> None:
    """Give the glibc heap's free memory back to the OS (a no-op where that is not glibc)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name is None:
            return
        _libc = ctypes.CDLL(name)
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
