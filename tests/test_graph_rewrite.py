"""The graph rewrite API (``Graph.edit()`` -> ``Rewrite``): each edit, errors, one validation."""

from __future__ import annotations

import numpy as np
import pytest

import refsnn.model.graph as graph_module
from refsnn.conversion import convert_if
from refsnn.errors import ModelFormatError
from refsnn.model.graph import INPUT, Rewrite, make_graph

from conftest import graph_to_dicts, small_cnn, small_mlp


def chain():
    """input -> fc0 -> relu0 -> fc1 -> relu1 -> fc2 (output)."""
    return small_mlp()


def names(g):
    return [n.name for n in g.nodes]


def snapshot(g):
    """Everything about a graph, parameters by value, to check it never changes."""
    return (g.input_shape, g.output, dict(g.shapes),
            [(n.name, n.op, n.inputs, dict(n.attrs),
              {k: (v.copy(), v.flags.writeable) for k, v in n.params.items()}) for n in g.nodes])


def assert_same_snapshot(a, b):
    assert a[:3] == b[:3]
    for (*node, params), (*node2, params2) in zip(a[3], b[3]):
        assert node == node2 and params.keys() == params2.keys()
        for k in params:
            np.testing.assert_array_equal(params[k][0], params2[k][0])
            assert params[k][1] == params2[k][1] is False


def counting(monkeypatch):
    """Count the calls of make_graph (the one validator) from here on."""
    calls = []
    real = graph_module.make_graph

    def wrapper(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(graph_module, "make_graph", wrapper)
    return calls


# ------------------------------------------------------------------------- each operation

def test_an_unedited_commit_is_the_same_graph():
    g = chain()
    again = g.edit().commit()
    assert names(again) == names(g) and again.output == g.output
    assert again.shapes == g.shapes and again.dtype == g.dtype
    for a, b in zip(g.nodes, again.nodes):
        assert (a.op, a.inputs, dict(a.attrs)) == (b.op, b.inputs, dict(b.attrs))
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])


def test_make_graph_takes_nodes_of_another_graph():
    g = chain()
    again = make_graph(g.input_shape, g.nodes, g.output)
    assert names(again) == names(g) and again.shapes == g.shapes


def test_replace_changes_op_attrs_params_and_inputs():
    g = chain()
    edit = g.edit()
    edit.replace("relu0", "hardtanh", attrs={"min_value": 0.0, "max_value": 2.0})
    edit.replace("fc1", params={"weight": np.ones((8, 10)), "bias": np.zeros(8)})
    out = edit.commit()
    assert out.node("relu0").op == "hardtanh" and out.node("relu0").attrs["max_value"] == 2.0
    np.testing.assert_array_equal(out.node("fc1").params["weight"], np.ones((8, 10)))
    assert out.node("fc1").inputs == ("relu0",)
    # new inputs: fc1 reads fc0 directly, and relu0 then feeds nothing, which make_graph refuses
    edit.replace("fc1", inputs=["fc0"])
    with pytest.raises(ModelFormatError, match="'relu0' feeds nothing"):
        edit.commit()


def test_set_params_keeps_the_other_parameters():
    g = chain()
    edit = g.edit()
    edit.set_params("fc0", bias=np.full(10, 0.5))
    assert edit.node("fc0").params["weight"] is g.node("fc0").params["weight"]
    out = edit.commit()
    np.testing.assert_array_equal(out.node("fc0").params["bias"], np.full(10, 0.5))
    np.testing.assert_array_equal(out.node("fc0").params["weight"], g.node("fc0").params["weight"])


def test_add_places_a_node_before_another_or_last():
    g = chain()
    edit = g.edit()
    edit.add("neg", "scale", ["fc0"], {"axis": "channel"}, {"weight": -np.ones(10)},
             before="relu0")
    edit.replace("relu0", inputs=["neg"])
    assert names(edit) == ["fc0", "neg", "relu0", "fc1", "relu1", "fc2"]
    assert [n.name for n in edit.consumers("fc0")] == ["neg"] and "neg" in edit
    edit.add("soft", "softmax", ["fc2"])
    edit.output = "soft"
    out = edit.commit()
    assert names(out) == ["fc0", "neg", "relu0", "fc1", "relu1", "fc2", "soft"]
    assert out.output == "soft"


def test_insert_after_rewires_the_readers_and_the_output():
    g = chain()
    edit = g.edit()
    edit.insert_after("relu0", "id", "identity")
    edit.insert_after("fc2", "out", "relu")
    out = edit.commit()
    assert names(out) == ["fc0", "relu0", "id", "fc1", "relu1", "fc2", "out"]
    assert out.node("id").inputs == ("relu0",) and out.node("fc1").inputs == ("id",)
    assert out.output == "out" and out.node("out").inputs == ("fc2",)


def test_insert_before_goes_between_a_node_and_its_first_input():
    g = small_cnn(residual=True)
    edit = g.edit()
    edit.insert_before("add", "shift", "affine", {"axis": "channel"},
                       {"weight": np.ones(4), "bias": -np.ones(4)})
    out = edit.commit()
    assert out.node("add").inputs == ("shift", "relu")
    assert out.node("shift").inputs == ("conv2",)
    assert names(out).index("shift") == names(out).index("add") - 1


def test_rewire_moves_every_reader_and_the_output():
    g = small_cnn(residual=True)
    edit = g.edit()
    edit.add("relu_b", "relu", ["relu"], before="conv2")
    edit.rewire("relu", "relu_b")
    assert edit.node("relu_b").inputs == ("relu_b",)  # rewire spares no reader: fix it up
    edit.replace("relu_b", inputs=["relu"])
    out = edit.commit()
    assert out.node("conv2").inputs == ("relu_b",)
    assert out.node("add").inputs == ("conv2", "relu_b")
    edit = g.edit()
    edit.rewire("fc", "flat")
    assert edit.output == "flat"


def test_remove_rewires_readers_to_its_input():
    g = small_cnn()
    edit = g.edit()
    edit.remove("bn")
    edit.remove("fc")
    out = edit.commit()
    assert names(out) == ["conv", "relu", "pool", "flat"]
    assert out.node("relu").inputs == ("conv",) and out.output == "flat"


def test_remove_refuses_a_node_with_several_inputs_and_changes_nothing():
    g = small_cnn(residual=True)
    edit = g.edit()
    with pytest.raises(ValueError, match="cannot remove node 'add': it has 2 inputs, not 1"):
        edit.remove("add")
    assert names(edit) == names(g) and edit.output == g.output


def test_unknown_names_raise_key_error_like_graph_node():
    edit = chain().edit()
    for call in (lambda: edit.node("nope"), lambda: edit.replace("nope", "relu"),
                 lambda: edit.remove("nope"), lambda: edit.insert_after("nope", "x", "relu"),
                 lambda: edit.add("x", "relu", ["fc0"], before="nope")):
        with pytest.raises(KeyError, match="nope"):
            call()
    assert "fc0" in chain() and "nope" not in chain()


# ------------------------------------------------------------ errors are make_graph's own

def _same_error(g, edit_fn, dicts_fn, output=None):
    """The edit fails on commit with exactly the error make_graph gives for the same dicts."""
    edit = g.edit()
    edit_fn(edit)
    with pytest.raises(ModelFormatError) as by_edit:
        edit.commit()
    dicts = graph_to_dicts(g)
    dicts_fn(dicts)
    with pytest.raises(ModelFormatError) as by_dicts:
        make_graph(g.input_shape, dicts, output or g.output)
    assert str(by_edit.value) == str(by_dicts.value)
    return str(by_edit.value)


def _node_dict(dicts, name):
    return next(d for d in dicts if d["name"] == name)


def test_an_unknown_op_is_make_graphs_error():
    msg = _same_error(chain(), lambda e: e.replace("relu0", "swish"),
                      lambda d: _node_dict(d, "relu0").update(op="swish"))
    assert msg.startswith("<memory>: /nodes/relu0: op: expected one of [")


def test_a_wrong_parameter_shape_is_make_graphs_error():
    msg = _same_error(chain(), lambda e: e.set_params("fc1", weight=np.ones((8, 3))),
                      lambda d: _node_dict(d, "fc1")["params"].update(weight=np.ones((8, 3))))
    assert "/nodes/fc1/weight: shape: expected (*, 10), found (8, 3)" in msg


def test_a_bad_attribute_is_make_graphs_error():
    msg = _same_error(chain(), lambda e: e.replace("relu0", "hardtanh",
                                                   attrs={"min_value": "low"}),
                      lambda d: _node_dict(d, "relu0").update(op="hardtanh",
                                                              attrs={"min_value": "low"}))
    assert "/nodes/relu0: min_value: expected a real number" in msg


def test_a_dangling_input_and_a_duplicate_name_are_make_graphs_errors():
    msg = _same_error(chain(), lambda e: e.replace("fc1", inputs=["nowhere"]),
                      lambda d: _node_dict(d, "fc1").update(inputs=["nowhere"]))
    assert "/nodes/fc1: inputs: expected 'input' or an existing node, found 'nowhere'" in msg
    relu = dict(name="relu1", op="relu", inputs=["fc0"])
    msg = _same_error(chain(), lambda e: e.add(**relu, before="fc1"),
                      lambda d: d.insert(2, dict(relu)))
    assert "/nodes/relu1: name: expected a unique node name, found 'relu1' twice" in msg


def test_a_cycle_and_a_shape_mismatch_are_make_graphs_errors():
    msg = _same_error(chain(), lambda e: e.replace("fc0", inputs=["relu0"]),
                      lambda d: _node_dict(d, "fc0").update(inputs=["relu0"]))
    assert "inputs: expected an acyclic graph, found a cycle" in msg
    g = small_cnn(residual=True)
    msg = _same_error(g, lambda e: e.replace("add", inputs=["conv2", INPUT]),
                      lambda d: _node_dict(d, "add").update(inputs=["conv2", INPUT]))
    assert "/nodes/add: inputs: expected equal shapes (4, 6, 6), found (2, 6, 6)" in msg


def test_removing_the_only_node_after_the_input_leaves_no_output():
    g = make_graph((3,), [dict(name="r", op="relu", inputs=[INPUT])], "r")
    edit = g.edit()
    edit.remove("r")
    with pytest.raises(ModelFormatError, match=r"<memory>: /: output: expected the name of a "
                                               r"node, found 'input'"):
        edit.commit()


def test_commit_names_the_file_it_is_given():
    edit = chain().edit()
    edit.replace("relu0", "swish")
    with pytest.raises(ModelFormatError, match=r"^net\.h5: /nodes/relu0: op: "):
        edit.commit(file="net.h5")


# ------------------------------------------------------- one validation; the original stays

def test_a_batch_of_edits_validates_once(monkeypatch):
    g = small_cnn(residual=True)
    calls = counting(monkeypatch)
    edit = g.edit()
    edit.remove("bn")
    edit.insert_after("relu2", "id", "identity")
    edit.insert_before("add", "shift", "affine", {"axis": "channel"},
                       {"weight": np.ones(4), "bias": np.zeros(4)})
    edit.set_params("conv", bias=np.zeros(4))
    edit.replace("pool", attrs={"kernel": (3, 3), "stride": (3, 3)})
    edit.set_params("fc", weight=np.zeros((3, 16)))
    assert calls == []  # editing checks nothing
    out = edit.commit()
    assert calls == ["fc"]
    assert out.shapes["pool"] == (4, 2, 2)


def test_an_invalid_batch_fails_once_at_commit(monkeypatch):
    calls = counting(monkeypatch)
    edit = chain().edit()
    edit.replace("relu0", "swish")
    edit.set_params("fc1", weight=np.ones((2, 2)))
    with pytest.raises(ModelFormatError):
        edit.commit()
    assert len(calls) == 1


def test_the_original_graph_is_untouched():
    g = small_cnn(residual=True)
    before = snapshot(g)
    edit = g.edit()
    edit.set_params("conv", weight=np.zeros((4, 2, 3, 3)))
    edit.replace("relu", "identity")
    edit.remove("bn")
    edit.insert_after("conv2", "id", "identity")
    edit.insert_before("fc", "pre", "identity")
    edit.add("extra", "relu", ["fc"])
    edit.output = "extra"
    edit.commit()
    assert_same_snapshot(snapshot(g), before)


def test_commit_casts_to_the_dtype_it_is_given():
    g = chain()
    assert g.edit().commit(dtype=np.float32).dtype == np.float32
    assert g.edit().commit(dtype=np.float32).edit().commit().dtype == np.float32


def test_an_order_that_is_not_topological_is_sorted_depth_first():
    g = chain()
    edit = g.edit()
    edit.nodes.reverse()
    assert names(edit.commit()) == names(g)


def test_a_rewrite_takes_dicts():
    edit = Rewrite((3,), [dict(name="a", op="relu", inputs=[INPUT]),
                          dict(name="b", op="identity", inputs=["a"])], "b")
    assert edit.node("b").inputs == ("a",)
    assert names(edit.commit()) == ["a", "b"]


def test_convert_if_validates_once_per_pass(monkeypatch):
    """BN folding (one batch), then the converted network (one batch)."""
    g = small_cnn()
    x = np.random.default_rng(1).uniform(0, 1, (5, 2, 6, 6))
    calls = counting(monkeypatch)
    convert_if(g, x)
    assert len(calls) == 2
