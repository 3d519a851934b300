"""refsnn: a reference implementation of ANN-to-SNN conversion.

The flat API, in the order of one evaluation::

    import refsnn
    graph = refsnn.load_model("data/models/cnn.h5")                 # or .keras, Keras .h5
    xc, _ = refsnn.load_data("data/digits.h5", "train", graph.input_shape)
    x, y = refsnn.load_data("data/digits.h5", "test", graph.input_shape)
    net = refsnn.convert(graph, method="if", calibration=xc)       # options as on the CLI
    run = refsnn.Simulator(net).run(x[:32], steps=[32, 128])       # run.readout[128]: (32, 10)
    result = refsnn.evaluate(net, x, y, steps=[32, 128], ann_graph=graph)

``refsnn.load(path)`` reads any file kind (model, network, NIR graph, data, run, trace). Each
flat name is the function or class of that name in the module :data:`_FLAT` gives (e.g.
``refsnn.convert is refsnn.conversion.convert``), imported on first use so that ``import
refsnn`` stays cheap. The core depends on NumPy, Numba, SciPy and h5py only.
"""

import importlib

__version__ = "0.1.0"

#: Flat name -> the module that defines it under that name.
_FLAT = {
    "load": "refsnn.files",
    "load_model": "refsnn.files",
    "save_model": "refsnn.model.format",
    "load_data": "refsnn.data",
    "load_sequences": "refsnn.data",
    "load_snn": "refsnn.sim.network",
    "save_snn": "refsnn.sim.network",
    "convert": "refsnn.conversion",
    "METHODS": "refsnn.conversion",
    "Simulator": "refsnn.sim.simulator",
    "evaluate": "refsnn.evaluation",
    "forward": "refsnn.ann",
}

__all__ = ["__version__", *_FLAT]


def __getattr__(name):
    if name not in _FLAT:
        raise AttributeError(f"module 'refsnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_FLAT[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_FLAT})
