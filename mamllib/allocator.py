"""glibc's allocator, set for a process that allocates and frees large tensors all the time.

A meta-training step allocates activations of up to some 20 MB and frees them at its
end. By default glibc maps a block that large afresh from the system, or serves it from
a heap it trims back to the system after each step; either way the next step touches
new pages, and the page faults cost about a quarter of the step on a 2-core machine
(benchmarks/RESULTS.md times a step both ways). Raising the mmap threshold to glibc's
largest (32 MiB) and not trimming the heap keeps those pages: the process's resident
memory stays at its peak instead of falling back between steps.

:func:`keep_freed_memory` runs when mamllib is imported, so that every training,
analysis and notebook kernel gets it. It leaves the allocator alone where the
environment sets glibc's own variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``: whoever set them chose), where ``MAMLLIB_MALLOC=glibc``
asks for glibc's defaults (less resident memory, slower steps), and off glibc (musl,
macOS).
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept up to 1 GiB: in effect, never trimmed
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
OPT_OUT = {"MAMLLIB_MALLOC": "glibc"}


def keep_freed_memory() -> bool:
    """Serve tensors of up to 32 MiB from a heap that is not trimmed; True where it was set."""
    chosen = any(name in os.environ for name in ENVIRONMENT) or any(
        os.environ.get(name) == value for name, value in OPT_OUT.items())
    if chosen or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    # mallopt returns 1 where it took the value.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
