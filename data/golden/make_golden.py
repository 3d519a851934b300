"""Write the golden cases of data/golden/ (see data/golden/README.md).

    PYTHONPATH=. python data/golden/make_golden.py

Each case is ``<case>.net.h5`` (a converted network, refsnn-snn) and ``<case>.trace.h5``
(refsnn's trace of it, NumPy reference backend, float64). Weights, biases, inputs and
calibration data are small dyadic rationals, so every sum is exact in float64 whatever the
summation order, and another correct float64 implementation must reproduce the spikes exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refsnn import __version__
from refsnn.convert import METHODS
from refsnn.model import make_graph
from refsnn.oracle.trace import record_trace, write_trace
from refsnn.sim.network import save_snn
from refsnn.sim.simulator import Simulator

HERE = Path(__file__).resolve().parent
STEPS = 16


def dyadic(rng, shape, scale=1.0, bits=3):
    k = int(scale * 2 ** bits)
    return rng.integers(-k, k + 1, shape) / 2.0 ** bits


def mlp(seed):
    rng = np.random.default_rng(seed)
    sizes, nodes, prev = (12, 10, 8, 3), [], "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        nodes.append(dict(name=f"fc{i}", op="linear", inputs=[prev],
                          params=dict(weight=dyadic(rng, (b, a), 0.5),
                                      bias=dyadic(rng, b, 0.25))))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(dict(name=f"relu{i}", op="relu", inputs=[prev]))
            prev = f"relu{i}"
    return make_graph((12,), nodes, prev)


def cnn(seed):
    rng = np.random.default_rng(seed)
    conv = lambda name, inp, c_in: dict(
        name=name, op="conv2d", inputs=[inp], attrs=dict(padding=(1, 1)),
        params=dict(weight=dyadic(rng, (4, c_in, 3, 3), 0.5), bias=dyadic(rng, 4, 0.25)))
    return make_graph((2, 6, 6), [
        conv("conv", "input", 2), dict(name="relu", op="relu", inputs=["conv"]),
        conv("conv2", "relu", 4), dict(name="add", op="add", inputs=["conv2", "relu"]),
        dict(name="relu2", op="relu", inputs=["add"]),
        dict(name="pool", op="avgpool2d", inputs=["relu2"],
             attrs=dict(kernel=(2, 2), stride=(2, 2))),
        dict(name="flat", op="flatten", inputs=["pool"]),
        dict(name="fc", op="linear", inputs=["flat"],
             params=dict(weight=dyadic(rng, (3, 36), 0.5), bias=dyadic(rng, 3, 0.25)))], "fc")


#: case -> (graph factory, method, conversion options)
CASES = {
    "mlp_if": (mlp, "if", dict(percentile=100)),
    "mlp_if_zero_half": (mlp, "if", dict(percentile=100, reset="zero", v_init="half")),
    "cnn_if_residual": (cnn, "if", dict(percentile=100)),
    "cnn_if_per_channel": (cnn, "if", dict(percentile=100, per_channel=True)),
    "mlp_bsnn": (mlp, "bsnn", dict(percentile=100, period=2)),
    "cnn_bsnn_residual": (cnn, "bsnn", dict(percentile=100, period=4, v_init="zero")),
    "mlp_signgd": (mlp, "signgd", dict()),
}


def main():
    for case, (factory, method, options) in CASES.items():
        graph = factory(0)
        rng = np.random.default_rng(1)
        calib = rng.integers(0, 9, (16,) + graph.input_shape) / 8.0
        x = rng.integers(0, 9, (2,) + graph.input_shape) / 8.0
        net = METHODS[method](graph, calib, **options)
        save_snn(net, HERE / f"{case}.net.h5")
        attrs = {"producer": f"refsnn {__version__}", "model": f"{case}.net.h5",
                 "method": method, "encoding": net.encoding, "backend": "numpy",
                 "command": "PYTHONPATH=. python data/golden/make_golden.py"}
        trace = record_trace(Simulator(net, "numpy"), x, STEPS, attrs=attrs)
        for layer in trace.layers.values():
            layer.potentials = None  # not needed to compare or classify: keeps the files small
        write_trace(HERE / f"{case}.trace.h5", trace)
        print(case)


if __name__ == "__main__":
    main()
