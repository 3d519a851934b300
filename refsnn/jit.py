"""The one jit policy of refsnn.

Every Numba kernel is compiled through these two decorators, so the options are decided in one
place: no ``fastmath`` (an oracle keeps IEEE semantics, including the order of additions and no
fused multiply-add), ``cache=True`` so a second process starts fast, and ``parallel=True`` only
for kernels whose ``prange`` loops split over independent outputs.

Setting ``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python (for coverage); the
results are the same, only slower.
"""

from __future__ import annotations

import numba

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
