"""``compare``'s last hypothesis class, ``discretisation``: the whole network re-simulated.

A layer's replay (``Kind.hypotheses``) feeds the reference's recorded input current through
variants of the layer's update. In a recurrent layer (e.g. a NIR ``CubaLIF`` with an Affine
edge back into itself) that input depends on the layer's own earlier spikes, so after the
first differing spike the recorded input is no longer what the other implementation's layer
received, and a departure of the discretisation (e.g. the membrane reading the synaptic
current of the same step, Norse's choice) stays unexplained by any replay of one layer.

Given the reference's network, this module re-simulates it, on the trace's recorded input
(``/encoded`` for a sequence or a Poisson stream, else ``/inputs``), under each other
discretisation that its nodes take (the kinds whose schema has a ``discretisation``
attribute, :data:`refsnn.neurons.nir_base.DISCRETISATIONS`), and names the one whose run gives
the other trace's spikes on every layer (``docs/semantics.md``, "Comparing traces").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from refsnn.errors import OptionError, RefsnnError
from refsnn.neurons.base import KINDS, SNN_OPS

#: The node attribute this class varies.
ATTR = "discretisation"


def choices(net) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The discretisations ``net`` (a SpikingNetwork) is in and those its nodes could take.

    Returns
    -------
    used : tuple of str
        The distinct ``discretisation`` attributes of its nodes, in node order (empty for a
        network none of whose kinds takes one).
    others : tuple of str
        Every other value the attribute may take (its schema's choices), in the schema's order.
    """
    used, allowed = [], []
    for node in net.graph.nodes:
        kind = KINDS.get(node.op)
        spec = kind.spec.attrs.get(ATTR) if kind is not None and kind.spec else None
        if spec is None:
            continue
        if node.attrs.get(ATTR) not in used:
            used.append(node.attrs.get(ATTR))
        allowed += [c for c in spec.choices or () if c not in allowed]
    return tuple(used), tuple(c for c in allowed if c not in used)


def with_discretisation(net, how: str):
    """``net`` with every node that takes a discretisation set to ``how`` (a new network
    through the graph's :class:`~refsnn.model.graph.Rewrite`; ``net`` is unchanged)."""
    edit = net.graph.edit()
    for node in net.graph.nodes:
        kind = KINDS.get(node.op)
        if kind is not None and kind.spec is not None and ATTR in kind.spec.attrs:
            edit.replace(node.name, attrs={**node.attrs, ATTR: how})
    return dataclasses.replace(net, graph=edit.commit(ops=SNN_OPS))


def rerun(net, trace) -> dict:
    """Spikes of every neuron layer of ``net`` on the input ``trace`` (a :class:`Trace`)
    recorded, for ``trace.steps`` steps, in NumPy.

    Returns
    -------
    dict of str to bool ndarray, shape (T, B, *layer_shape)

    Raises
    ------
    OptionError
        A trace without its input (neither ``/inputs`` nor ``/encoded``), or one ``net``
        cannot take.
    """
    from refsnn.sim.simulator import Simulator

    sim = Simulator(net, "numpy")
    names = [op.node.name for op in sim.ops if op.is_neuron]
    dtype = sim.dtype
    if trace.inputs is None and trace.encoded is None:
        raise OptionError("compare --model: the reference trace holds neither /inputs nor "
                          "/encoded, so the network cannot be re-simulated on its input")
    if trace.inputs is None:  # a sequence: the input at step t is encoded[t - 1]
        x = np.ascontiguousarray(np.swapaxes(np.asarray(trace.encoded, dtype), 0, 1))
        run = sim.run(x, [trace.steps], rasters=names, sequence=True)
    elif trace.encoded is not None and net.encoding != "analog":
        run = sim.run(np.asarray(trace.inputs, dtype), [trace.steps], rasters=names,
                      encoded=np.asarray(trace.encoded, dtype))
    else:
        seed = 0 if net.encoding == "analog" else int(trace.attrs.get("seed", 0))
        run = sim.run(np.asarray(trace.inputs, dtype), [trace.steps], seed=seed,
                      rasters=names)
    return {name: run.rasters[name] for name in names}


def same_spikes(spikes: dict, trace) -> bool:
    """Whether ``spikes`` (layer name -> (T, B, *shape)) are ``trace``'s on every layer of
    the trace (and the trace has every layer of ``spikes``)."""
    return set(spikes) == set(trace.layers) and all(
        np.array_equal(spikes[name], layer.spikes) for name, layer in trace.layers.items())


def check_reference(net, ref) -> None:
    """Refuse a network that is not the reference trace's: its run on the trace's input must
    give the reference's spikes on every layer.

    Raises
    ------
    OptionError
        Naming the first layer (and step) where it does not.
    """
    spikes = rerun(net, ref)
    if set(spikes) != set(ref.layers):
        raise OptionError(f"compare --model: the network's neuron layers {sorted(spikes)} are "
                          f"not the reference trace's {sorted(ref.layers)}")
    for name, layer in ref.layers.items():
        if spikes[name].shape != layer.spikes.shape:
            where = f"layer {name}: shape {spikes[name].shape}, not {layer.spikes.shape}"
        elif not np.array_equal(spikes[name], layer.spikes):
            diff = (spikes[name] != layer.spikes).reshape(layer.spikes.shape[0], -1)
            where = f"layer {name}, step {int(np.argmax(diff.any(1))) + 1}"
        else:
            continue
        raise OptionError(f"compare --model: the network does not reproduce the reference "
                          f"trace ({where}); give the network (dt, dtype, discretisation) "
                          "the reference was recorded with")


def explain(net, ref, other) -> tuple[bool, str]:
    """The ``discretisation`` hypothesis: whether ``net`` (the reference's network) under
    another discretisation gives ``other``'s spikes on every layer, and which.

    ``ref`` gives the input (:func:`rerun`); a discretisation whose constants are not finite
    for this network (:func:`refsnn.neurons.nir_base.rates`) is skipped.

    Returns
    -------
    (bool, str)
        As a kind's hypotheses: ``(True, "discretisation=<name> ...")`` for the first
        discretisation, in the schema's order, that reproduces every layer; else
        ``(False, "")``.
    """
    _, others = choices(net)
    for how in others:
        try:
            spikes = rerun(with_discretisation(net, how), ref)
        except (RefsnnError, ValueError):  # e.g. constants not finite over this dt
            continue
        if same_spikes(spikes, other):
            return True, (f"{ATTR}={how}: the whole network re-simulated with it reproduces "
                          "every layer spike for spike")
    return False, ""
