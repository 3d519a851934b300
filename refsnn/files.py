"""Load any file refsnn reads: the one place that dispatches on file kind (:data:`READERS`).

Neither torch nor Keras is imported (Keras files are read with h5py, json and zipfile); ONNX and
NIR files need the optional ``onnx`` and ``nir`` packages, imported only when one is read.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import numpy as np

from refsnn.data import DataFile, describe
from refsnn.errors import ModelFormatError, OptionError
from refsnn.io import H5_ERRORS, attr_str, open_h5, unreadable
from refsnn.nir import require_nir


def _reader(module: str, name: str, *options: str):
    """A reader ``(path, dtype, nir)`` that imports ``module`` when it runs (an optional
    package only when its file kind is read) and passes ``name`` the ``options`` it takes
    (``nir`` is empty for every kind but NIR graphs: :func:`load` refuses it otherwise)."""
    def read(path, dtype, nir):
        given = {"dtype": np.float64 if dtype is None else dtype}
        return getattr(importlib.import_module(module), name)(
            path, **{k: given[k] for k in options})
    return read


def _nir(path, dtype, nir):
    require_nir()  # the install line, before the reader imports nir
    from refsnn.nir.reader import from_nir, read_nir
    graph = read_nir(path)
    return from_nir(graph, dtype=nir_dtype(graph.metadata, dtype, str(path)), file=str(path),
                    **nir)


def nir_dtype(metadata, dtype, file: str):
    """The dtype a NIR graph is simulated in: ``dtype`` if given, else its metadata's
    ``refsnn_dtype`` (what ``refsnn export-nir`` wrote), else float64."""
    if dtype is not None:
        return dtype
    given = (metadata or {}).get("refsnn_dtype")
    if given is None:
        return np.float64
    name = str(np.asarray(given))
    if name not in ("float64", "float32"):
        raise ModelFormatError(file, "/node/metadata", "refsnn_dtype", "'float64' or "
                               "'float32'", repr(name))
    return np.dtype(name).type


#: File kind (:func:`file_kind`) -> (what it is, reader ``(path, dtype, nir)``). A kind not
#: listed (a damaged or foreign file) goes to the refsnn model reader, whose errors say what is
#: wrong. ``dtype`` applies to models, networks and NIR graphs (None: float64; for a NIR
#: graph, :func:`nir_dtype`), the ``nir`` options (``dt``, ``discretisation``) to NIR graphs
#: only.
READERS = {
    "refsnn-model": ("a model", _reader("refsnn.model.format", "load_refsnn_h5", "dtype")),
    "keras-h5": ("a model", _reader("refsnn.interop.keras", "load_keras_h5", "dtype")),
    "keras-archive": ("a model", _reader("refsnn.interop.keras", "load_keras_archive",
                                         "dtype")),
    "onnx": ("a model", _reader("refsnn.interop.onnx", "load_onnx", "dtype")),
    "nir": ("a NIR graph", _nir),
    "refsnn-snn": ("a converted network", _reader("refsnn.sim.network", "load_snn", "dtype")),
    "refsnn-data": ("a data file", lambda path, dtype, nir: DataFile(str(path), describe(path))),
    "refsnn-run": ("a run file", _reader("refsnn.sim.record", "read_run")),
    "refsnn-trace": ("a trace", _reader("refsnn.oracle.trace", "read_trace")),
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
            value = str(attr_str(f.attrs.get("format", "")))
            return value or ("keras-h5" if "model_config" in f.attrs else "")
        except H5_ERRORS as e:  # damaged metadata: h5py fails on the first look inside
            raise unreadable(path, e) from None


def load(path, dtype=None, dt: float | None = None, accept=None,
         discretisation: str | None = None):
    """Read any file refsnn reads, chosen by its kind (:data:`READERS`).

    Parameters
    ----------
    path : str or Path
    dtype : numpy dtype, optional
        Parameters of a model or network are converted to it (default float64); a NIR graph
        is simulated in it (default: its metadata's ``refsnn_dtype`` if any, else float64).
    dt : float, optional
        A NIR graph's forward Euler time step (default: the graph's metadata ``dt``).
    accept : sequence of str, optional
        What the caller can use, as :data:`READERS` names it (e.g. ``("a model",)``); another
        kind of file is refused. Default: every kind.
    discretisation : str, optional
        A NIR graph's discretisation of its leaky nodes
        (:data:`refsnn.neurons.nir_base.DISCRETISATIONS`; default ``euler``,
        ``docs/semantics.md``).

    Returns
    -------
    Graph, SpikingNetwork, DataFile, (Run, dict) or Trace
        A model (refsnn ``.h5``, Keras ``.h5`` or ``.keras``, ``.onnx``) as a Graph; a
        converted network or a NIR graph as a SpikingNetwork; a data file as a
        :class:`refsnn.data.DataFile`; a run file as its run and settings; a trace.

    Raises
    ------
    ModelFormatError
        For a foreign or damaged file or a kind not in ``accept``, in one line naming the file.
    OptionError
        ``dt`` or ``discretisation`` for a file that is not a NIR graph.

    Examples
    --------
    >>> import refsnn
    >>> refsnn.load("data/models/mlp.h5").input_shape
    (1, 8, 8)
    >>> refsnn.load("data/digits.h5").info["classes"]
    10
    """
    kind = file_kind(path)
    nir = {k: v for k, v in (("dt", dt), ("discretisation", discretisation)) if v is not None}
    if nir and kind != "nir":
        raise OptionError(f"--{next(iter(nir))} applies to NIR graphs only; {path} is not one")
    what, read = READERS.get(kind, READERS["refsnn-model"])
    if accept is not None and what not in accept:
        raise ModelFormatError(str(path), "/", "format", " or ".join(
            [", ".join(accept[:-1])] * (len(accept) > 1) + [accept[-1]]), what)
    return read(path, dtype, nir)


def load_model(path, dtype=np.float64):
    """Load the ANN in ``path`` (refsnn model, Keras ``.h5`` or ``.keras``, ``.onnx``) as a Graph.

    Any other file kind is refused with a one-line :class:`ModelFormatError` naming what it
    is (:func:`load` reads every kind)."""
    return load(path, dtype, accept=("a model",))
