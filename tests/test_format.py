"""The model format: exact round trips, and a clear error for every kind of bad file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from refsnn.errors import ModelFormatError
from refsnn.model import load_refsnn_h5, make_graph, save_model

from conftest import MODELS, graph_to_dicts, small_cnn


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.h5"
    save_model(small_cnn(residual=True), path)
    return path


def test_round_trip_is_exact(tmp_path):
    graph = small_cnn(residual=True)
    save_model(graph, tmp_path / "a.h5")
    again = load_refsnn_h5(tmp_path / "a.h5")
    assert again.input_shape == graph.input_shape and again.output == graph.output
    assert [(n.name, n.op, n.inputs, dict(n.attrs)) for n in again.nodes] == \
        [(n.name, n.op, n.inputs, dict(n.attrs)) for n in graph.nodes]
    for a, b in zip(again.nodes, graph.nodes):
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            assert a.params[k].dtype == b.params[k].dtype
            assert np.array_equal(a.params[k], b.params[k])
    save_model(again, tmp_path / "b.h5")
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_shipped_models_load():
    for path in sorted(MODELS.glob("*.h5")):
        graph = load_refsnn_h5(path)
        assert graph.shapes[graph.output] == (10,)


def test_graph_is_frozen(cnn):
    with pytest.raises(ValueError):
        cnn.nodes[0].params["weight"][0, 0, 0, 0] = 1.0
    with pytest.raises(TypeError):
        cnn.nodes[0].attrs["groups"] = 2


def _expect(path, where: str, field: str, *fragments):
    with pytest.raises(ModelFormatError) as info:
        load_refsnn_h5(path)
    err = info.value
    assert err.file == str(path)
    assert err.path == where, str(err)
    assert err.field == field, str(err)
    message = str(err)
    assert message.startswith(f"{path}: {where}: {field}: expected ")
    for fragment in fragments:
        assert fragment in message, message
    return err


def test_missing_file(tmp_path):
    _expect(tmp_path / "nope.h5", "/", "file", "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("this is not HDF5\n")
    _expect(path, "/", "file", "readable HDF5", "unreadable")


def test_truncated(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    _expect(model_file, "/", "file", "readable HDF5")


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


def test_wrong_format_and_version(model_file):
    _edit(model_file, lambda f: f.attrs.__setitem__("format_version", 99))
    _expect(model_file, "/", "format_version", "1 or 2 (supported)", "99")
    _edit(model_file, lambda f: f.attrs.__setitem__("format", "keras"))
    _expect(model_file, "/", "format", "'refsnn-model'", "'keras'")


@pytest.mark.parametrize("value, found", [
    (0, "int64 of shape ()"), (1.5, "float64 of shape ()"), (np.arange(2), "int64 of shape (2,)"),
    (np.array([[b"conv"]]), "|S4 of shape (1, 1)")])
def test_inputs_not_names(model_file, value, found):
    """A numeric or 2-D ``inputs`` attribute is a format error naming the node (it used to
    escape as a TypeError)."""
    _edit(model_file, lambda f: f["nodes/relu"].attrs.__setitem__("inputs", value))
    err = _expect(model_file, "/nodes/relu", "inputs", "a string or a 1-D string array", found)
    assert "\n" not in str(err)


def test_messages_are_one_line(model_file):
    """An array found where a name belongs is shown on one line."""
    _edit(model_file, lambda f: f.attrs.__setitem__("output", np.arange(40).reshape(20, 2)))
    err = _expect(model_file, "/", "output", "found array([[ 0, 1], [ 2, 3],")
    assert "\n" not in str(err)


def test_missing_dataset(model_file):
    _edit(model_file, lambda f: f["nodes/conv"].__delitem__("bias"))
    _expect(model_file, "/nodes/conv/bias", "dataset", "parameter 'bias' of conv2d", "missing")


def test_unknown_dataset(model_file):
    _edit(model_file, lambda f: f["nodes/conv"].create_dataset("scale", data=np.ones(4)))
    _expect(model_file, "/nodes/conv/scale", "name", "parameters of conv2d", "unknown")


def test_wrong_dtype(model_file):
    def fn(f):
        del f["nodes/fc/bias"]
        f["nodes/fc"].create_dataset("bias", data=np.arange(3, dtype=np.int32))
    _edit(model_file, fn)
    _expect(model_file, "/nodes/fc/bias", "dtype", "float32 or float64", "int32")


def test_wrong_shape(model_file):
    def fn(f):
        del f["nodes/fc/weight"]
        f["nodes/fc"].create_dataset("weight", data=np.ones((3, 35)))
    _edit(model_file, fn)
    _expect(model_file, "/nodes/fc/weight", "shape", "(*, 36)", "(3, 35)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(model_file, bad):
    def fn(f):
        w = f["nodes/conv/weight"]
        arr = w[()]
        arr[1, 0, 2, 2] = bad
        w[...] = arr
    _edit(model_file, fn)
    _expect(model_file, "/nodes/conv/weight", "values", "finite numbers",
            f"{bad} at index (1, 0, 2, 2)")


def test_unknown_op(model_file):
    _edit(model_file, lambda f: f["nodes/relu"].attrs.__setitem__("op", "swish"))
    _expect(model_file, "/nodes/relu", "op", "one of", "'swish'")


def test_unknown_attribute(model_file):
    _edit(model_file, lambda f: f["nodes/conv"].attrs.__setitem__("dilation", [2, 2]))
    _expect(model_file, "/nodes/conv", "dilation", "attributes of conv2d", "unknown")


def test_bad_attribute_value(model_file):
    _edit(model_file, lambda f: f["nodes/conv"].attrs.__setitem__("stride", [0, 1]))
    _expect(model_file, "/nodes/conv", "stride", "values >= 1", "(0, 1)")


def test_missing_attribute(model_file):
    _edit(model_file, lambda f: f["nodes/pool"].attrs.__delitem__("kernel"))
    _expect(model_file, "/nodes/pool", "kernel", "attribute 'kernel' of avgpool2d", "missing")


def test_dangling_input(model_file):
    _edit(model_file, lambda f: f["nodes/fc"].attrs.__setitem__("inputs", ["flatten_typo"]))
    _expect(model_file, "/nodes/fc", "inputs", "an existing node", "'flatten_typo'")


def test_cycle(model_file):
    _edit(model_file, lambda f: f["nodes/conv"].attrs.__setitem__("inputs", ["relu"]))
    err = _expect(model_file, "/nodes/conv", "inputs", "an acyclic graph", "a cycle")
    assert "conv -> bn -> relu -> conv" in str(err)


def test_node_feeding_nothing(model_file):
    _edit(model_file, lambda f: f.attrs.__setitem__("output", "flat"))
    _expect(model_file, "/nodes/fc", "inputs", "feed the output", "feeds nothing")


def test_missing_output_and_input_group(model_file, tmp_path):
    _edit(model_file, lambda f: f.attrs.__setitem__("output", "nowhere"))
    _expect(model_file, "/", "output", "the name of a node", "'nowhere'")
    _edit(model_file, lambda f: f.__delitem__("input"))
    _expect(model_file, "/input", "group", "an 'input' group", "missing")


def test_shape_mismatch_in_add(tmp_path):
    graph = small_cnn(residual=True)
    dicts = graph_to_dicts(graph)
    for d in dicts:
        if d["name"] == "add":
            d["inputs"] = ["conv2", "input"]
    with pytest.raises(ModelFormatError, match=r"<memory>: /nodes/add: inputs: expected equal "
                                               r"shapes \(4, 6, 6\), found \(2, 6, 6\)"):
        make_graph(graph.input_shape, dicts, graph.output)


def test_negative_variance(model_file):
    def fn(f):
        v = f["nodes/bn/var"]
        arr = v[()]
        arr[0] = -1.0
        v[...] = arr
    _edit(model_file, fn)
    _expect(model_file, "/nodes/bn", "var", "non-negative variances")


def test_float32_parameters_load_as_float64(tmp_path):
    graph = small_cnn()
    dicts = graph_to_dicts(graph)
    for d in dicts:
        d["params"] = {k: v.astype(np.float32) for k, v in d["params"].items()}
    save_model(make_graph(graph.input_shape, dicts, graph.output, dtype=np.float32),
               tmp_path / "f32.h5")
    loaded = load_refsnn_h5(tmp_path / "f32.h5")
    assert loaded.nodes[0].params["weight"].dtype == np.float64
