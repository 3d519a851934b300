"""At which event density should a layer switch from the event-driven to the dense kernel?

For each layer and event density it times refsnn's two exact kernels, which give the same
bits (``refsnn.synapses.dense``): the event-driven one (``linear_numba`` / ``conv_numba`` with
the dense choice switched off) and the dense one (``linear_dense_numba`` /
``conv_dense_numba``), then what the automatic choice does (``DENSE_FROM``), and, for scale,
the same layer as a dense BLAS product, which reorders the sums (NumPy: ``x @ W.T``; im2col +
one GEMM for the convolution, as the dense peers of ``run.py`` do). The densities where the
two exact kernels take the same time are what ``DENSE_FROM`` is set to. It asserts nothing;
it prints a Markdown table::

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
from refsnn.synapses.dense import conv_dense_numba, linear_dense_numba
from refsnn.synapses.linear import linear_numba
from refsnn.synapses.weights import Weights

DENSITIES = (0.05, 0.13, 0.2, 0.3, 0.45, 0.6, 1.0)


def linear_blas(x, w_t, bias):
    return x @ w_t + bias


def conv_blas(x, w, bias):
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


def event_driven_only(w):
    """Prepared weights that the automatic choice never runs densely (it requires finite
    weights; the flag is only read by that choice, the kernels use the values)."""
    weights = Weights(w)
    weights.finite = False
    return weights


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads {args.threads}, best of {args.repeats}, load average "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| layer | dtype | density | exact event-driven ms | exact dense ms | "
          "automatic choice ms | BLAS (reordered) ms | event-driven / dense |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    conv_args = ((1, 1), (1, 1))
    for dtype in (np.float64, np.float32):
        layers = {
            "linear 512->512, batch 32": (
                lambda x, w, b: linear_numba(x, w["events"], b),
                lambda x, w, b: linear_dense_numba(x, w["dense"], b),
                lambda x, w, b: linear_numba(x, w["auto"], b),
                lambda x, w, b: linear_blas(x, w["raw"], b),
                (32, 512), (rng.normal(size=(512, 512)), rng.normal(size=512))),
            "conv 64->64 3x3 on 32x32, batch 32": (
                lambda x, w, b: conv_numba(x, w["events"], b, *conv_args, 1),
                lambda x, w, b: conv_dense_numba(x, w["dense"], b, *conv_args),
                lambda x, w, b: conv_numba(x, w["auto"], b, *conv_args, 1),
                lambda x, w, b: conv_blas(x, w["raw"], b),
                (32, 64, 32, 32), (rng.normal(size=(64, 64, 3, 3)), rng.normal(size=64))),
        }
        for name, (events, dense, auto, blas, shape, params) in layers.items():
            raw, b = (a.astype(dtype) for a in params)
            # prepared once, as a simulator's layer does (the layouts are made on first use)
            w = {"raw": raw, "events": event_driven_only(raw), "dense": Weights(raw),
                 "auto": Weights(raw)}
            for d in DENSITIES:
                x = np.where(rng.random(shape) < d, 0.5, 0.0).astype(dtype)
                te = best_ms(events, x, w, b, repeats=args.repeats)
                td = best_ms(dense, x, w, b, repeats=args.repeats)
                ta = best_ms(auto, x, w, b, repeats=args.repeats)
                tb = best_ms(blas, x, w, b, repeats=args.repeats)
                print(f"| {name} | {np.dtype(dtype).name} | {d} | {te:.3f} | {td:.3f} | "
                      f"{ta:.3f} | {tb:.3f} | {te / td:.2f} |", flush=True)


if __name__ == "__main__":
    main()
