"""Load an ANN from any file kind refsnn reads: the one place that dispatches on file kind.

``inspect``, ``convert`` and ``evaluate`` load models through :func:`load_graph`. Neither torch
nor Keras is imported (Keras files are read with h5py, json and zipfile); ONNX files need the
optional ``onnx`` package, imported only when one is read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from refsnn.interop.keras import load_keras_archive, load_keras_h5
from refsnn.io import H5_ERRORS, open_h5, unreadable
from refsnn.model.format import load_model


def _load_onnx(path, dtype=np.float64):
    from refsnn.interop.onnx import load_onnx  # imports onnx lazily, with a one-line error
    return load_onnx(path, dtype=dtype)


#: File kind -> reader ``(path, dtype) -> Graph``. Kinds not listed (including a damaged or
#: foreign file) go to :func:`refsnn.model.format.load_model`, whose errors say what is wrong.
READERS = {
    "refsnn-model": load_model,
    "keras-h5": load_keras_h5,
    "keras-archive": load_keras_archive,
    "onnx": _load_onnx,
}


def file_kind(path) -> str:
    """``"onnx"`` for a name ending in ``.onnx`` (protobuf has no signature to look for),
    ``"keras-archive"`` for a zip, ``"nir"`` for a NIR graph, else the HDF5 root's ``format``
    attribute
    (``"refsnn-model"``, ``"refsnn-snn"``, ...), ``"keras-h5"`` for a legacy Keras file with a
    ``model_config``, or ``""``."""
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


def load_graph(path, dtype=np.float64):
    """Load the ANN in ``path`` (refsnn model, Keras ``.h5`` or ``.keras``, ``.onnx``) as a Graph."""
    return READERS.get(file_kind(path), load_model)(path, dtype=dtype)
