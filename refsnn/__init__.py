"""refsnn: a reference implementation of ANN-to-SNN conversion.

The flat API, in the order of one evaluation::

    import refsnn
    graph = refsnn.load_model("data/models/cnn.h5")                 # or .keras, Keras .h5
    xc, _ = refsnn.load_data("data/digits.h5", "train", graph.input_shape)
    x, y = refsnn.load_data("data/digits.h5", "test", graph.input_shape)
    net = refsnn.convert(graph, method="if", calibration=xc)       # options as on the CLI
    run = refsnn.Simulator(net).run(x[:32], steps=[32, 128])       # run.readout[128]: (32, 10)
    result = refsnn.evaluate(net, x, y, steps=[32, 128], ann_graph=graph)

Names are imported on first use, so ``import refsnn`` stays cheap. Each is also where it always
was (:func:`refsnn.model.load_model`, :func:`refsnn.data.load_split`,
:func:`refsnn.convert.convert`, :class:`refsnn.sim.simulator.Simulator`,
:func:`refsnn.evaluate.evaluate`). The core depends on NumPy, Numba, SciPy and h5py only.
"""

import importlib

__version__ = "0.1.0"

#: Flat name -> (module, attribute); ``None`` as attribute: the (callable) module itself.
_FLAT = {
    "load_model": ("refsnn.interop.load", "load_graph"),
    "save_model": ("refsnn.model.format", "save_model"),
    "load_data": ("refsnn.data", "load_split"),
    "load_network": ("refsnn.sim.network", "load_snn"),
    "save_network": ("refsnn.sim.network", "save_snn"),
    "convert": ("refsnn.convert", None),
    "METHODS": ("refsnn.convert", "METHODS"),
    "Simulator": ("refsnn.sim.simulator", "Simulator"),
    "evaluate": ("refsnn.evaluate", None),
    "forward": ("refsnn.ann", "forward"),
}

__all__ = ["__version__", *_FLAT]


def __getattr__(name):
    if name not in _FLAT:
        raise AttributeError(f"module 'refsnn' has no attribute {name!r}")
    module, attribute = _FLAT[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_FLAT})
