"""Which ``refsnn.jit.SERIAL_BELOW`` suits this machine?

Kernels whose work estimate is below ``SERIAL_BELOW`` run their serial compilation; the rest
fork the OpenMP team (``refsnn.jit.parallel``). Both give the same bits, so the threshold
tunes speed only. This script runs the shipped digits networks (IF, the benchmark's
workloads) with several thresholds **interleaved in one process** (each round runs every
value once), so that load from other processes affects every value alike, and prints the
median ms per run as a Markdown table (batch 1: 16 images one by one). It asserts nothing::

    python benchmarks/serial_threshold.py [--threads 2] [--rounds 7] [--steps 32]
"""

from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

import refsnn.jit as jit
from refsnn.sim.simulator import Simulator
from workloads import convert, digits

#: The thresholds compared (element operations; synapse multiply-adds count 1/MACS_PER_OP).
VALUES = (1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 62)


def run_ms(sim, inputs, steps) -> float:
    t0 = time.perf_counter()
    for x in inputs:
        sim.run(x, steps)
    return 1e3 * (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args()
    numba.set_num_threads(args.threads)
    default = jit.SERIAL_BELOW
    print(f"threads {args.threads}, T = {args.steps}, median of {args.rounds} rounds, load "
          f"average {os.getloadavg()[0]:.2f}; the default is 2^{int(np.log2(default))}\n")
    names = [f"2^{int(np.log2(v))}" if v < 1 << 62 else "all serial" for v in VALUES]
    print("| workload | dtype | batch | " + " | ".join(names) + " |")
    print("|---|---|---:|" + "---:|" * len(VALUES))
    for name in ("mlp", "cnn"):
        work = digits(name, 16)
        for dtype in ("float32", "float64"):
            sim = Simulator(convert(work, "if", dtype), "numba")
            for batch in (1, 32):
                inputs = [work.x[:32]] if batch == 32 else [work.x[i:i + 1] for i in range(16)]
                times = {v: [] for v in VALUES}
                try:
                    for v in VALUES:  # warm-up: compile / load both compilations
                        jit.SERIAL_BELOW = v
                        run_ms(sim, inputs, args.steps)
                    for _ in range(args.rounds):
                        for v in VALUES:
                            jit.SERIAL_BELOW = v
                            times[v].append(run_ms(sim, inputs, args.steps))
                finally:
                    jit.SERIAL_BELOW = default
                cells = " | ".join(f"{np.median(times[v]):.2f}" for v in VALUES)
                print(f"| digits-{name} | {dtype} | {batch} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
