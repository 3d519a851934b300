"""At which event density does a dense BLAS product beat refsnn's exact event-driven kernel?

The issue allows a fast mode that reorders sums with BLAS. This measures whether one would be
faster, layer by layer: refsnn's exact kernels (``linear_numba``, ``conv_numba``) against the
same layer as a dense product (NumPy BLAS: ``x @ W.T``; im2col + one GEMM for the convolution,
as the dense peers of ``run.py`` do), on random spike inputs of several densities. It asserts
nothing; it prints a Markdown table::

    python benchmarks/density_crossover.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refsnn.synapses.conv import conv_numba
from refsnn.synapses.linear import linear_numba

DENSITIES = (0.05, 0.13, 0.3, 0.6, 1.0)


def linear_dense(x, w_t, bias):
    return x @ w_t + bias


def conv_dense(x, w, bias):
    """3x3, stride 1, padding 1: im2col + one GEMM."""
    b, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = sliding_window_view(xp, (3, 3), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5).reshape(
        b * h * wd, c * 9)
    out = cols @ w.reshape(w.shape[0], -1).T
    return out.reshape(b, h, wd, -1).transpose(0, 3, 1, 2) + bias.reshape(1, -1, 1, 1)


def best_ms(f, *args, repeats):
    f(*args)  # warm-up (Numba cache load, BLAS pool)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, best of {args.repeats}, load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| layer | dtype | density | exact event-driven ms | dense BLAS ms | exact / dense |")
    print("|---|---|---:|---:|---:|---:|")
    for dtype in (np.float64, np.float32):
        layers = {
            "linear 512->512, batch 32": (
                lambda x, p: linear_numba(x, *p), lambda x, p: linear_dense(x, *p),
                (32, 512), (rng.normal(size=(512, 512)), rng.normal(size=512))),
            "conv 64->64 3x3 on 32x32, batch 32": (
                lambda x, p: conv_numba(x, *p, (1, 1), (1, 1), 1),
                lambda x, p: conv_dense(x, *p),
                (32, 64, 32, 32), (rng.normal(size=(64, 64, 3, 3)), rng.normal(size=64))),
        }
        for name, (exact, dense, shape, params) in layers.items():
            params = tuple(a.astype(dtype) for a in params)
            for d in DENSITIES:
                x = np.where(rng.random(shape) < d, 0.5, 0.0).astype(dtype)
                te = best_ms(exact, x, params, repeats=args.repeats)
                td = best_ms(dense, x, params, repeats=args.repeats)
                print(f"| {name} | {np.dtype(dtype).name} | {d} | {te:.3f} | {td:.3f} | "
                      f"{te / td:.2f} |")


if __name__ == "__main__":
    main()
