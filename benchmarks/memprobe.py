"""Peak memory of one contender on one batch, measured in a fresh process.

    python benchmarks/memprobe.py SPEC.json

``run.py`` writes the converted network (``save_snn``), the source ANN (``save_model``) and
the batch (``.npy``) to a temporary folder, then starts this script once per contender. It
imports only what the contender needs (torch only for the torch kinds), builds it, runs 1 step
on the batch (kernels loaded, pools started, scratch allocated), reads the resident set size,
resets the kernel's peak-RSS mark (``echo 5 > /proc/self/clear_refs``), runs the full
``steps``, and prints one JSON line:

- ``peak_mb``: the peak resident set size during the full run (``VmHWM`` of
  ``/proc/self/status`` after the reset): what running this contender on this batch needs,
  the Python interpreter, its libraries and the loaded network included;
- ``base_mb``: the resident set size just before the full run (``VmRSS``);
- ``run_mb``: ``peak_mb - base_mb``, the memory the run itself added at its peak;
- ``raised``: false when the peak mark could not be reset (then ``peak_mb`` is the peak of
  the whole process, loading included, and ``run_mb`` an upper bound).

Why a fresh process and the resident set size: it counts every allocator at once (NumPy,
Numba's runtime, PyTorch's CPU allocator, SpikingJelly's tensors, BLAS buffers) with one
definition; ``tracemalloc`` sees NumPy but not Numba's or PyTorch's allocations, and in a
shared process a peak cannot be attributed to one contender. (Not ``ru_maxrss``: Linux carries
the parent's resident set over ``fork`` + ``exec`` into it, so a child started by a large
benchmark process reports at least the parent's size.)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> bool:
    """Reset the peak resident set size mark to the current size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    import numba
    import numpy as np

    import contenders as ct
    from refsnn.model.format import load_refsnn_h5
    from refsnn.sim.network import load_snn

    c = ct.Contender(**spec["contender"])
    torch = None
    if c.needs_torch:
        import torch
        torch.set_num_threads(spec["threads"])
    numba.set_num_threads(spec["threads"])
    net = load_snn(spec["net"], dtype=np.dtype(c.precision))
    graph = load_refsnn_h5(spec["graph"])
    x = np.load(spec["x"])
    run = ct.build(c, net, graph, torch)
    run(x, 1)
    del net, graph  # the contender keeps what it needs
    base = status_mb("VmRSS")
    reset = reset_peak()
    run(x, spec["steps"])
    peak = status_mb("VmHWM")
    print(json.dumps({"peak_mb": peak, "base_mb": base, "run_mb": max(0.0, peak - base),
                      "raised": reset, "pid": os.getpid()}))


if __name__ == "__main__":
    main(sys.argv[1])
