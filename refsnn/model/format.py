"""The HDF5 model format, version 2: save and load a :class:`~refsnn.model.graph.Graph`.

Layout (documented in ``docs/format.md``)::

    /                 attrs: format = "refsnn-model", format_version = 2, output = <node name>,
                      refsnn_checksums (refsnn.checksum; version 1: the same without)
    /input            attrs: shape = int array (per-sample shape, e.g. [1, 8, 8])
    /nodes/<name>     attrs: op = str, inputs = str array, and the operator's attributes
                      datasets: the operator's parameters (float32 or float64)

Every problem found while loading raises :class:`~refsnn.errors.ModelFormatError` naming the
file, the HDF5 path, the field, what was expected and what was found.
"""

from __future__ import annotations

import h5py
import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.io import atomic_h5, attr_names, attr_str, check_header, read_dataset, read_h5
from refsnn.model.graph import Graph, make_graph

FORMAT = "refsnn-model"
FORMAT_VERSION = 2  # 2: with checksums (refsnn.checksum); version 1 files still load
_RESERVED = ("op", "inputs")


def _attr_value(value):
    """HDF5 form of a normalised attribute: str, float64 scalar or int64 scalar/array."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return np.float64(value)
    return np.asarray(value, dtype=np.int64)


def write_graph(group: h5py.Group, graph: Graph) -> None:
    """Write ``graph``'s input, nodes and output into ``group`` (no format attributes)."""
    group.attrs["output"] = graph.output
    group.create_group("input").attrs["shape"] = np.asarray(graph.input_shape, dtype=np.int64)
    nodes = group.create_group("nodes", track_order=True)
    for node in graph.nodes:
        g = nodes.create_group(node.name, track_order=True)
        g.attrs["op"] = node.op
        g.attrs["inputs"] = np.asarray(node.inputs, dtype=h5py.string_dtype())
        for key, value in node.attrs.items():
            g.attrs[key] = _attr_value(value)
        for key, arr in node.params.items():
            g.create_dataset(key, data=arr)


def read_graph(group: h5py.Group, file: str, prefix: str = "", dtype=np.float64,
               ops=None) -> Graph:
    """Read and validate a graph written by :func:`write_graph`."""
    def err(path, field, expected, found):
        return ModelFormatError(file, prefix + path, field, expected, found)

    if "input" not in group or not isinstance(group["input"], h5py.Group):
        raise err("/input", "group", "an 'input' group", "nothing (missing)")
    if "shape" not in group["input"].attrs:
        raise err("/input", "shape", "attribute 'shape'", "nothing (missing)")
    shape = np.asarray(group["input"].attrs["shape"])
    if shape.dtype.kind not in "iu" or shape.ndim != 1:
        raise err("/input", "shape", "a 1-D integer array", f"{shape!r}")
    if "nodes" not in group or not isinstance(group["nodes"], h5py.Group):
        raise err("/nodes", "group", "a 'nodes' group", "nothing (missing)")
    if "output" not in group.attrs:
        raise err("/", "output", "attribute 'output'", "nothing (missing)")

    nodes = []
    for name, g in group["nodes"].items():
        path = f"/nodes/{name}"
        if not isinstance(g, h5py.Group):
            raise err(path, "kind", "a group per node", "a dataset")
        for key in _RESERVED:
            if key not in g.attrs:
                raise err(path, key, f"attribute '{key}'", "nothing (missing)")
        inputs = attr_names(g.attrs["inputs"], lambda found: err(path, "inputs", "a string or a "
                                                             "1-D string array", found))
        params = {}
        for key, d in g.items():
            if not isinstance(d, h5py.Dataset):
                raise err(f"{path}/{key}", "kind", "a dataset (parameter)", "a group")
            params[key] = read_dataset(g, key, file, prefix + f"{path}/{key}")
        attrs = {k: attr_str(v) for k, v in g.attrs.items() if k not in _RESERVED}
        nodes.append({"name": name, "op": attr_str(g.attrs["op"]), "inputs": inputs,
                      "attrs": attrs, "params": params})
    try:
        return make_graph(shape, nodes, attr_str(group.attrs["output"]), file=file, dtype=dtype,
                          ops=ops)
    except ModelFormatError as e:
        raise ModelFormatError(file, prefix + e.path, e.field, e.expected, e.found) from None


def save_model(graph: Graph, path) -> None:
    """Write ``graph`` to ``path`` atomically (the file appears only when complete)."""
    with atomic_h5(path) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        write_graph(f, graph)


def load_refsnn_h5(path, dtype=np.float64) -> Graph:
    """Load and validate a model file.

    Parameters
    ----------
    path : str or Path
        The HDF5 file.
    dtype : numpy dtype
        dtype the parameters are converted to (float64 by default).

    Raises
    ------
    ModelFormatError
        For any problem: not HDF5, truncated, wrong format or version, missing or unknown keys,
        wrong dtypes or shapes, non-finite values, cycles, dangling inputs.
    """
    def read(f, file):
        check_header(f, file, FORMAT, FORMAT_VERSION)
        return read_graph(f, file, dtype=dtype)
    return read_h5(path, "model file", read)
