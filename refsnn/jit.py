"""The one jit policy of refsnn.

Every Numba kernel is compiled through these two decorators, so the options are decided in one
place: no ``fastmath`` (an oracle keeps IEEE semantics, including the order of additions and no
fused multiply-add), ``cache=True`` so a second process starts fast, and ``parallel=True`` only
for kernels whose ``prange`` loops split over independent outputs.

Setting ``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python (for coverage); the
results are the same, only slower.
"""

from __future__ import annotations

import os

# Numba's OpenMP threads spin at every barrier by default. When another process shares the
# cores they then steal each other's time slices and a 2-thread run collapses (measured on
# 2 cores with one other busy process: the digits CNN at batch 1 took 600 ms per run instead
# of 2 ms). Passive waiting keeps that from happening; an explicit OMP_WAIT_POLICY wins.
# Only speed depends on it, never a result. It must be set before the OpenMP runtime loads,
# which Numba does at the first parallel kernel call.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the environment default above)

__all__ = ["serial", "inline", "parallel", "prange"]

_COMMON = dict(nopython=True, cache=True, fastmath=False, nogil=True)

#: Decorator for kernels that run on one thread.
serial = numba.jit(**_COMMON)

#: Decorator for small helpers called from kernels, inlined into them at Numba's IR level (so
#: LLVM sees one loop nest and can vectorise across it).
inline = numba.jit(inline="always", **_COMMON)

#: Decorator for kernels with ``prange`` loops over independent outputs.
parallel = numba.jit(parallel=True, **_COMMON)

prange = numba.prange
