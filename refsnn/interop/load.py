"""Load any file refsnn reads: the one place that dispatches on file kind (:data:`READERS`).

Neither torch nor Keras is imported (Keras files are read with h5py, json and zipfile); ONNX and
NIR files need the optional ``onnx`` and ``nir`` packages, imported only when one is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from refsnn.errors import ModelFormatError, OptionError
from refsnn.interop.keras import load_keras_archive, load_keras_h5
from refsnn.io import H5_ERRORS, open_h5, unreadable
from refsnn.model.format import load_refsnn_h5


def _onnx(path, dtype, dt):
    from refsnn.interop.onnx import load_onnx  # imports onnx lazily, with a one-line error
    return load_onnx(path, dtype=dtype)


def _nir(path, dtype, dt):
    from refsnn.nir.cli import require_nir
    require_nir()  # the install line, before the reader imports nir
    from refsnn.nir.reader import load_nir
    return load_nir(path, dt=dt, dtype=dtype)


def _network(path, dtype, dt):
    from refsnn.sim.network import load_snn
    return load_snn(path, dtype=dtype)


def _data(path, dtype, dt):
    from refsnn.data import open_data
    return open_data(path)


def _run(path, dtype, dt):
    from refsnn.sim.record import read_run
    return read_run(path)


def _trace(path, dtype, dt):
    from refsnn.oracle.trace import read_trace
    return read_trace(path)


def _model(read):
    return lambda path, dtype, dt: read(path, dtype=dtype)


#: File kind (:func:`file_kind`) -> (what it is, reader ``(path, dtype, dt)``). A kind not
#: listed (a damaged or foreign file) goes to the refsnn model reader, whose errors say what is
#: wrong. ``dtype`` applies to models and networks, ``dt`` to NIR graphs only.
READERS = {
    "refsnn-model": ("a model", _model(load_refsnn_h5)),
    "keras-h5": ("a model", _model(load_keras_h5)),
    "keras-archive": ("a model", _model(load_keras_archive)),
    "onnx": ("a model", _onnx),
    "nir": ("a NIR graph", _nir),
    "refsnn-snn": ("a converted network", _network),
    "refsnn-data": ("a data file", _data),
    "refsnn-run": ("a run file", _run),
    "refsnn-trace": ("a trace", _trace),
}


def file_kind(path) -> str:
    """``"onnx"`` for a name ending in ``.onnx`` (protobuf has no signature to look for),
    ``"keras-archive"`` for a zip, ``"nir"`` for a NIR graph, else the HDF5 root's ``format``
    attribute (``"refsnn-model"``, ``"refsnn-snn"``, ...), ``"keras-h5"`` for a legacy Keras
    file with a ``model_config``, or ``""``."""
    if Path(path).suffix.lower() == ".onnx":
        return "onnx"
    if Path(path).is_file() and zipfile.is_zipfile(path):
        return "keras-archive"
    with open_h5(path, "model or network file", verify=False) as f:  # the reader verifies
        try:
            if "node" in f and "version" in f and "format" not in f.attrs:
                return "nir"  # NIR's HDF5 layout (nir.write): /version and the graph in /node
            value = f.attrs.get("format", "")
            value = value.decode() if isinstance(value, bytes) else str(value)
            return value or ("keras-h5" if "model_config" in f.attrs else "")
        except H5_ERRORS as e:  # damaged metadata: h5py fails on the first look inside
            raise unreadable(path, e) from None


def load(path, dtype=np.float64, dt: float | None = None, accept=None):
    """Read any file refsnn reads, chosen by its kind (:data:`READERS`).

    Parameters
    ----------
    path : str or Path
    dtype : numpy dtype
        Parameters of a model or network are converted to it (float64 by default).
    dt : float, optional
        A NIR graph's forward Euler time step (default: the graph's metadata ``dt``).
    accept : sequence of str, optional
        What the caller can use (e.g. ``("a model",)``, as :data:`READERS` names it); another
        kind of file is refused. Default: every kind.

    Returns
    -------
    Graph
        For a model: refsnn ``.h5``, Keras ``.h5`` or ``.keras``, ``.onnx``.
    SpikingNetwork
        For a converted network (``refsnn convert``) or a NIR graph.
    DataFile
        For a data file (:class:`refsnn.data.DataFile`).
    (Run, dict)
        For a run file (``refsnn evaluate -o``): the run and its settings.
    Trace
        For a trace (``refsnn trace``).

    Raises
    ------
    ModelFormatError
        For a foreign or damaged file, or a kind not in ``accept``, naming the file, path and
        field.
    OptionError
        ``dt`` for a file that is not a NIR graph.

    Examples
    --------
    >>> import refsnn
    >>> refsnn.load("data/models/mlp.h5").input_shape
    (1, 8, 8)
    >>> refsnn.load("data/digits.h5").info["classes"]
    10
    """
    kind = file_kind(path)
    if dt is not None and kind != "nir":
        raise OptionError(f"--dt applies to NIR graphs only; {path} is not one")
    what, read = READERS.get(kind, READERS["refsnn-model"])
    if accept is not None and what not in accept:
        raise ModelFormatError(str(path), "/", "format", " or ".join(accept), f"{what} "
                               "(refsnn.load reads every kind)")
    return read(path, dtype, dt)


def load_model(path, dtype=np.float64):
    """Load the ANN in ``path`` (refsnn model, Keras ``.h5`` or ``.keras``, ``.onnx``) as a Graph.

    Any other file kind is refused with a one-line :class:`ModelFormatError` naming what it
    is (:func:`load` reads every kind)."""
    return load(path, dtype, accept=("a model",))
