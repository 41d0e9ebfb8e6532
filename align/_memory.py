"""Keep the C heap from growing with the length of a run or the size of its sets (glibc).

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so after the
first large temporaries the next ones (a batch's hidden states, a layer read from the cache, a
block of a Gram matrix) are carved from the heap instead of mapped, and the heap fragments:
freed holes are too small or in the wrong place for the next array, and peak RSS grows with
the run and with the sets far beyond what is alive at any moment. Seen here: encoding grew
+380 MB over 8,000 sentences with glibc's default, +140 MB with the threshold pinned;
``align compare`` from the cache grew 17.6 KB per sentence by default and 5.6 KB with the
threshold pinned at 4 MB (1 MB: 5.8 KB but 31% slower, from page faults on the many mid-sized
blocks that were mapped and unmapped; 4 MB: 8% slower). Every command pins it when it starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# The most one batched computation holds in temporaries at once: bootstrap resamples, Gram
# column blocks, float64 row blocks of a layer. Small enough that scoring's memory is one layer
# plus this, large enough that the products stay efficient (measured: benchmarks/bench_memory.py).
WORK_BYTES = 4 << 20

_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = WORK_BYTES  # blocks this large or larger are mapped, and unmapped when freed
_done = False


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold at :data:`MMAP_THRESHOLD` (once per process); False where
    there is no glibc."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # musl or another libc: nothing to pin
        _done = False
    return _done


def trim_heap() -> bool:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``); False where there
    is no glibc. Worth one call after a large owner of small allocations goes (a tokenizer)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
