"""The one jit policy of refsnn.

Every Numba kernel is compiled through these two decorators, so the options are decided in one
place: no ``fastmath`` (an oracle keeps IEEE semantics, including the order of additions and no
fused multiply-add), ``cache=True`` so a second process starts fast, and ``parallel=True`` only
for kernels whose ``prange`` loops split over independent outputs.

Setting ``NUMBA_DISABLE_JIT=1`` turns every kernel into plain Python (for coverage); the
results are the same, only slower.
"""

from __future__ import annotations

import functools
import os
import types as _pytypes

# Numba's OpenMP threads (GNU libgomp on Linux) spin at every barrier, by default for up to
# 300,000 iterations. When other processes keep the cores busy the spinning threads steal each
# other's time slices and a 2-thread run collapses. Measured on 2 cores, digits MLP at batch 1,
# T = 32, with two other processes running 2-thread refsnn: 892 ms with spinning
# (OMP_WAIT_POLICY=active), 10.9 ms passive, 8.8 ms with GOMP_SPINCOUNT=1000. Passive waiting
# costs 3-6x on an idle machine for small networks (0.7 -> 3.9 ms); a spin count of 1000 costs
# about nothing there (0.8 ms). So that is the default unless the user chose a policy or a
# spin count. It changes speed only, never a result, and must be set before the OpenMP runtime
# loads, which Numba does at the first parallel kernel call.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import numba  # noqa: E402  (after the environment default above)

import numpy as np  # noqa: E402
from numba.core import cgutils, codegen, config, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

__all__ = ["serial", "inline", "parallel", "prange", "register_block", "SERIAL_BELOW",
           "MACS_PER_OP", "macs", "VECTOR_BYTES"]


def _full_width_features():
    """The host's LLVM feature string with 512-bit vectors allowed, or None to leave Numba's
    own choice (no AVX-512 on this CPU, or the user chose ``NUMBA_CPU_NAME`` /
    ``NUMBA_CPU_FEATURES``).

    On AVX-512 CPUs LLVM's tuning for Intel server cores says "prefer 256-bit vectors" (to
    spare the clock drops of early AVX-512 parts), so Numba's loops were vectorised at 8
    float32 lanes where the registers hold 16. Measured on a 2-core Intel Xeon (Emerald
    Rapids), VGG layers at batch 32, float32, ms per call, 256-bit vs 512-bit: dense conv
    64->128 on 16x16 23.8 / 10.1, event-driven conv 64->64 on 32x32 24.7 / 17.3. The bits
    cannot change: without fastmath LLVM neither reorders a sum nor fuses a multiply-add
    (kernels vectorise across independent outputs), so a wider vector holds more outputs,
    each computed as before; the kernel tests check this against the NumPy twins. On CPUs
    without AVX-512 (AVX2 at most: the AMD EPYC machines) nothing is changed.
    """
    if config.CPU_NAME is not None or config.CPU_FEATURES is not None:
        return None
    features = codegen.get_host_cpu_features()  # honours NUMBA_ENABLE_AVX=0
    if "+avx512f" not in features.split(","):
        return None
    return features + ",-prefer-256-bit"


# Numba builds its target machine at the first compilation (after this module's import), from
# its config, which it reloads from the environment; a user's own choice is left alone, and so
# is a process that compiled Numba code before importing refsnn (speed only, never a result).
# Numba's cache keys include the feature string, so code compiled either way is never mixed.
_features = _full_width_features()
if _features is not None:
    os.environ["NUMBA_CPU_FEATURES"] = _features
    config.reload_config()

#: Bytes of one vector register the kernels are compiled for: 64 where refsnn allowed 512-bit
#: vectors above (16 float32 lanes, 32 registers), else 32 (AVX2: 8 lanes, 16 registers). The
#: benchmark report names it. The register tiles of :mod:`refsnn.synapses.dense` were sized
#: on AVX2; at 512 bits the same tile takes 8 of the 32 vector registers in float32 and 16 in
#: float64 (on AVX2 it was measured, not derived). Read from the features Numba compiles for,
#: so a child process that inherited them from a refsnn parent says the same.
_in_use = (config.CPU_FEATURES or "").split(",")
VECTOR_BYTES = 64 if "+avx512f" in _in_use and "-prefer-256-bit" in _in_use else 32

_COMMON = dict(nopython=True, cache=True, fastmath=False, nogil=True)

#: Decorator for kernels that run on one thread.
serial = numba.jit(**_COMMON)

#: Decorator for small helpers called from kernels, inlined into them at Numba's IR level (so
#: LLVM sees one loop nest and can vectorise across it).
inline = numba.jit(inline="always", **_COMMON)

#: Kernels given a ``work`` estimate run on one thread below this many element operations
#: (an element operation: one neuron update, one comparison, one gathered window element;
#: about 0.1-0.2 ns of one core here). A parallel region costs a fork and a join of the
#: OpenMP team: a few microseconds on an idle machine, 50-60 us measured when another process
#: holds the second core (the waiting thread has to be scheduled back in), so a call must be
#: worth tens of microseconds on one thread before a second one can pay. Measured (2 cores,
#: 2026-12-04, another process on one core; serial / parallel us per call): IF block of
#: 16 x 32 x 128 float32 (65 k operations) 14 / 68, spike count 7 / 64; dense linear 512 x 128
#: -> 64 (4.2 M multiply-adds) 123 / 180. The earlier 1 << 15 sent all of those to the team.
#: The value: ``python benchmarks/serial_threshold.py`` on the idle machine (2026-12-04, 15
#: interleaved rounds, T = 32 and 128): 1 << 18 runs the digits CNN at batch 1 1.2-1.6x faster
#: than 1 << 17 and costs at most 7 % on its batch-32 rows at T = 32 (docs/performance.md).
SERIAL_BELOW = 1 << 18

#: Multiply-adds of a vectorised kernel (dense and event-driven synapses) per element
#: operation of :data:`SERIAL_BELOW`: measured 0.03 ns per multiply-add of the dense linear
#: kernel in float32 and 0.05 in float64, against 0.22 ns per IF neuron update.
MACS_PER_OP = 8


def macs(n: int) -> int:
    """``n`` multiply-adds of a synapse kernel in element operations (see
    :data:`MACS_PER_OP`), for ``work`` estimates."""
    return n // MACS_PER_OP


def parallel(fn=None, *, work=None):
    """Decorator for kernels with ``prange`` loops over independent outputs.

    ``@parallel``: one parallel kernel. ``@parallel(work=f)``: the same function compiled
    twice, parallel and serial (``prange`` is a plain ``range`` there), and each call runs the
    serial one when ``f(*args)`` (about the element operations of the call) is below
    :data:`SERIAL_BELOW` or Numba has one thread. Each output is computed by the same
    arithmetic in the same order in both, because the loops split over independent outputs:
    the choice changes the speed, never a bit (tested: the kernel tests run the serial kernel
    on 1 thread and the parallel one on 2 against the NumPy twins).
    """
    if fn is None:
        return lambda f: parallel(f, work=work)
    if work is None:
        return numba.jit(parallel=True, **_COMMON)(fn)
    return SplitKernel(fn, work)


class SplitKernel:
    """A kernel compiled parallel and serial, picked per call by its work (see
    :func:`parallel`)."""

    def __init__(self, fn, work):
        self.work = work
        self.parallel = numba.jit(parallel=True, **_COMMON)(fn)
        # a copy under another name: Numba's cache files are named after the function, and
        # its cache index does not tell a parallel compilation from a serial one
        self.serial = numba.jit(**_COMMON)(_renamed(fn, "_serial"))
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        # the thread count only where the work is large: reading it costs a microsecond
        if self.work(*args) < SERIAL_BELOW or numba.get_num_threads() == 1:
            return self.serial(*args)
        return self.parallel(*args)


def _renamed(fn, suffix: str):
    copy = _pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                                 fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__module__ = fn.__module__
    return copy


prange = numba.prange


def register_block(size: int):
    """Make ``scratch(like)``: a 1-D array of ``size`` elements of ``like``'s dtype, uninitialised,
    for one kernel job's accumulators.

    In compiled code the array lives on the stack (an LLVM ``alloca``). LLVM then knows that
    no other array aliases it, and when a loop indexes it with constants only (loops of fixed
    trip count, fully unrolled), it keeps the elements in vector registers for the whole loop
    instead of loading and storing them per addition. Nothing about the arithmetic changes:
    each element still gets the same roundings in the same order. Under
    ``NUMBA_DISABLE_JIT=1`` it is a plain ``np.empty``.

    Parameters
    ----------
    size : int
        Elements; a compile-time constant of the kernels that use it.
    """
    size = int(size)

    def scratch(like):
        return np.empty(size, like.dtype)

    @intrinsic
    def _stack(typingctx, like):
        def codegen(context, builder, signature, args):
            return cgutils.alloca_once(builder, context.get_value_type(like.dtype), size=size)
        return types.CPointer(like.dtype)(like), codegen

    @overload(scratch, inline="always")
    def _scratch(like):
        def impl(like):
            return numba.carray(_stack(like), size)
        return impl

    return scratch
