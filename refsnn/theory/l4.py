"""The spread of the pre-firing membrane potential under Bernoulli (Poisson) inputs.

Allred and Roy (arXiv 2111.09446) observe that conversion matches the *mean* pre-firing
potential of a neuron to the ANN and ignores its temporal spread, whose standard deviation
they relate to the L4-norm of the neuron's weights. This module gives that spread exactly
(derivation: ``proofs/l4_norm.ipynb``).

One neuron, weights ``w`` (n,), inputs that spike independently per step with probability
``r`` (n,) and carry the value ``v`` (n,) (1 for the Poisson encoder's ``|x|``; ``theta``
for IF neurons). The input current at step ``t`` is ``I_t = sum_i w_i v_i s_i(t)`` with
``s_i(t) ~ Bernoulli(r_i)`` and the pre-firing potential after ``t`` steps (before any
threshold or reset, without the initial potential) is ``V_t = I_1 + ... + I_t``::

    E[I]   = sum_i w_i v_i r_i                Var[I]   = sum_i (w_i v_i)^2 r_i (1 - r_i)
    E[V_t] = t E[I]                           Var[V_t] = t Var[I]

(steps are independent, so variances add). Cauchy-Schwarz on ``(w_i^2)`` and ``(r_i)``, for
``v = 1``, gives the L4 bound::

    sum_i w_i^2 r_i (1 - r_i) <= sum_i w_i^2 r_i <= ||w||_4^2 ||r||_2

so ``sd(V_t) <= sqrt(t) ||w||_4 ||r||_2^(1/2)``, with equality when ``r`` is proportional to
``w^2`` and ``r -> 0``. Neurons of one layer see the same ``r``, so the bound scales with
``||w_j||_4`` alone across a layer.

Deeper layers: inputs are IF spike trains. They are more regular than Bernoulli trains of
the same rate (an IF neuron under constant drive fires periodically), which lowers the
variance, but neurons of one layer share inputs, so their trains are correlated, and the
covariances (ignored here) can raise it. The Bernoulli value is then only an estimate;
``refsnn diagnose --only spread`` measures how far off it is per layer.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Mapping, NamedTuple

import numpy as np

from refsnn import ann
from refsnn.errors import OptionError
from refsnn.model.graph import INPUT, Graph, Node

__all__ = ["PotentialPrediction", "predict_potential", "CurrentMoments", "current_moments",
           "source_spikes", "limit_rates",
           "POWER_OPS"]


class PotentialPrediction(NamedTuple):
    """Predicted moments of ``V_t`` for a set of neurons (arrays of shape (m,)).

    Attributes
    ----------
    mean : ndarray
        ``t · w·r``.
    sd : ndarray
        ``sqrt(t · sum_i w_i^2 r_i (1 - r_i))``.
    l4_bound : ndarray
        ``sqrt(t) · ||w||_4 · ||r||_2^(1/2)``, an upper bound of ``sd``.
    """

    mean: np.ndarray
    sd: np.ndarray
    l4_bound: np.ndarray


def predict_potential(w, r, t: int) -> PotentialPrediction:
    """Mean, standard deviation and L4 bound of the pre-firing potential after ``t`` steps.

    Parameters
    ----------
    w : array_like, shape (n,) or (m, n)
        Weights of one neuron, or one row per neuron.
    r : array_like, shape (n,)
        Spike probability per step of each input, in [0, 1] (each spike has value 1).
    t : int
        Number of steps, >= 0.

    Returns
    -------
    PotentialPrediction
        Arrays of shape () for one neuron, (m,) for m neurons.
    """
    w = np.asarray(w, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if w.ndim not in (1, 2) or r.ndim != 1 or w.shape[-1] != r.shape[0]:
        raise OptionError(f"predict_potential: expected w of shape (n,) or (m, n) and r of "
                          f"shape (n,), found {w.shape} and {r.shape}")
    if not (np.all(np.isfinite(w)) and np.all((r >= 0) & (r <= 1))):
        raise OptionError("predict_potential: expected finite weights and rates in [0, 1]")
    if not isinstance(t, (int, np.integer)) or t < 0:
        raise OptionError(f"predict_potential: expected a step count t >= 0, found {t!r}")
    w2 = w * w
    mean = t * (w @ r)
    sd = np.sqrt(t * (w2 @ (r * (1.0 - r))))
    l4 = np.sqrt(np.sqrt(np.sum(w2 * w2, axis=-1)))
    bound = np.sqrt(t) * l4 * np.sqrt(np.linalg.norm(r))
    return PotentialPrediction(mean, sd, bound)


# --- per-step moments of a node's current, propagated through the synapse graph -------------
#
# Between two neuron layers the current is an affine map of the source spikes,
# I_j = b_j + sum_i c_ji s_i. Its mean is the map of the sources' means: the ANN forward of the
# synapses. Its variance (independent sources) is sum_i c_ji^2 Var(s_i): the map with every
# coefficient squared and no bias. More generally sum_i |c_ji|^p y_i ("the p-power map") comes
# from applying, node by node, each synapse with its coefficients raised to the power p
# (p = 0: 1 where the coefficient is non-zero). That is exact as long as every source reaches a
# neuron along one path only (a product of single coefficients), which holds for one
# linear/conv2d per neuron layer with non-overlapping pooling, reshapes and adds of different
# layers (all shipped models); two overlapping maps in a row would mix paths, and the result
# would ignore the covariances between them.

def _powered(node: Node, p: int, names=("weight",)) -> SimpleNamespace:
    """``node`` with its coefficients raised to the power ``p`` and biases zeroed."""
    params = dict(node.params)
    for k in names:
        params[k] = _pow(params[k], p)
    if "bias" in params:
        params["bias"] = np.zeros_like(params["bias"])
    return SimpleNamespace(name=node.name, op=node.op, inputs=node.inputs, attrs=node.attrs,
                           params=params)


def _pow(c, p: int):
    """``|c|^p``, with ``|c|^0 = 1`` only where ``c != 0`` (a missing synapse stays missing)."""
    return (c != 0).astype(c.dtype) if p == 0 else np.abs(c) ** p


def _p_avgpool(node, p, y):
    kh, kw = node.attrs["kernel"]
    # forward = sum / k with k = kh kw; every coefficient is 1/k, so the p-power map is sum / k^p
    return ann.FORWARD["avgpool2d"](node, y) * float(kh * kw) ** (1 - p)


def _p_batchnorm(node, p, y):
    q = node.params
    s = q["gamma"] / np.sqrt(q["var"] + node.attrs["eps"])
    return y * _pow(s, p).reshape((1, -1) + (1,) * (y.ndim - 2))


def _p_mean(node, p, y):
    m = ann.FORWARD["mean"](node, y)
    return m * float(y.size // m.size) ** (1 - p)  # mean = sum / n, coefficients 1/n


def _same(op):
    return lambda node, p, *ys: ann.FORWARD[op](node, *ys)


def _on_powered(op):
    return lambda node, p, y: ann.FORWARD[op](_powered(node, p), y)


#: op -> ``f(node, p, *inputs) -> output``: the node's p-power map (coefficients ``|c|^p``,
#: no constants). ``p = 2`` on variances gives the variance of independent inputs.
POWER_OPS = {
    **{op: _on_powered(op) for op in ("linear", "conv2d", "scale", "affine")},
    **{op: _same(op) for op in ("flatten", "identity", "reshape", "transpose")},
    "avgpool2d": _p_avgpool,
    "batchnorm": _p_batchnorm,
    "add": lambda node, p, *ys: sum(ys[1:], ys[0]),
    "mean": _p_mean,
}


def _propagate(graph: Graph, node: str, sources: Mapping[str, np.ndarray], p):
    """Apply the synapses between ``sources`` and neuron ``node``'s input.

    ``p=None``: the ANN forward (the constants included); otherwise the p-power map. Returns
    ``None`` when a synapse on the way has no p-power map (e.g. max pooling of spikes).
    """
    memo = {}

    def walk(name):
        if name in sources:
            return sources[name]
        if name in memo:
            return memo[name]
        if name == INPUT:
            raise OptionError("current_moments: the moments of 'input' are needed")
        n = graph.node(name)
        if n.op not in ann.FORWARD:
            raise OptionError(f"current_moments: node '{name}' ({n.op}) is not a synapse; "
                              f"give its moments as a source")
        ins = [walk(i) for i in n.inputs]
        if p is None:
            out = ann.FORWARD[n.op](n, *ins)
        elif n.op not in POWER_OPS or any(y is None for y in ins):
            out = None
        else:
            out = POWER_OPS[n.op](n, p, *ins)
        memo[name] = out
        return out

    return walk(graph.node(node).inputs[0])


#: Operators that map each input entry to one output entry (they keep entries independent).
_ELEMENTWISE = ("flatten", "identity", "reshape", "transpose", "batchnorm", "scale", "affine")


def single_path(graph: Graph, node: str, sources) -> bool:
    """Whether every source spike reaches each neuron of ``node`` along one path at most.

    That is when the p-power maps are exact. Tracked per value: *disjoint* (each entry
    depends on its own source spikes; sources are) and its set of source nodes. A many-to-one
    map (linear, conv2d, pooling, mean) of a disjoint value is exact but its output entries
    share inputs, unless it is a pooling whose windows do not overlap; ``add`` is exact when
    its inputs come from different sources.
    """
    memo = {}

    def walk(name):  # -> (exact so far, disjoint, set of sources)
        if name in sources:
            return True, True, {name}
        if name in memo:
            return memo[name]
        n = graph.node(name)
        ins = [walk(i) for i in n.inputs]
        exact = all(e for e, _, _ in ins)
        srcs = set().union(*(s for _, _, s in ins))
        if n.op in _ELEMENTWISE:
            disjoint = ins[0][1]
        elif n.op == "add":
            pairwise = sum(len(s) for _, _, s in ins) == len(srcs)
            exact = exact and pairwise
            disjoint = pairwise and all(d for _, d, _ in ins)
        elif n.op == "avgpool2d":
            exact = exact and ins[0][1]
            disjoint = ins[0][1] and (tuple(n.attrs["kernel"]) == tuple(n.attrs["stride"])
                                      and tuple(n.attrs["padding"]) == (0, 0))
        else:  # linear, conv2d, mean, and anything else: needs disjoint inputs
            exact = exact and all(d for _, d, _ in ins)
            disjoint = False
        memo[name] = (exact, disjoint, srcs)
        return memo[name]

    return walk(graph.node(node).inputs[0])[0]


class CurrentMoments(NamedTuple):
    """Per-step moments of the current of one neuron node (arrays (B, *node_shape)).

    ``var`` and ``l4_bound`` are ``None`` when a synapse on the way is not linear (max
    pooling of spikes) or a source reaches the neuron along two paths (:func:`single_path`),
    where the p-power maps would miss the cross terms.

    Attributes
    ----------
    mean : ndarray
        ``E[I]``.
    var : ndarray or None
        ``Var[I] = sum_i c_i^2 q_i`` with ``q_i`` the variance of source spike ``i``.
    l4_bound : ndarray or None
        ``||c||_4^2 · ||q||_2`` (Cauchy-Schwarz), an upper bound of ``var``; ``c`` are the
        coefficients of the source *spikes* (weights times spike values) and ``q`` runs over the
        sources the neuron sees (its receptive field).
    """

    mean: np.ndarray
    var: np.ndarray | None
    l4_bound: np.ndarray | None


def current_moments(graph: Graph, node: str, rates: Mapping[str, np.ndarray],
                    values: Mapping[str, np.ndarray]) -> CurrentMoments:
    """Per-step mean, variance and L4 bound of the current a neuron node receives.

    Every source (``"input"`` and the upstream neuron nodes the current depends on) is taken
    as independent Bernoulli spike trains: element ``i`` is ``values[i]`` with probability
    ``rates[i]``, else 0 (Poisson encoder: the value is ``sign(x)`` and the rate ``|x|``; IF
    neurons: the value is the threshold).

    Parameters
    ----------
    graph : Graph
    node : str
        The neuron node; its current is the value of its input node.
    rates : mapping of str to ndarray, shape (B, *source_shape)
        Spike probability per step of every source, in [0, 1].
    values : mapping of str to ndarray, broadcastable to the rates
        The value one spike of each source carries.

    Returns
    -------
    CurrentMoments
    """
    q = {k: rates[k] * (1.0 - rates[k]) for k in rates}
    mean = _propagate(graph, node, {k: values[k] * rates[k] for k in rates}, None)
    var = _propagate(graph, node, {k: values[k] ** 2 * q[k] for k in rates}, 2)
    if var is None or not single_path(graph, node, rates):
        return CurrentMoments(mean, None, None)
    ones = {k: np.broadcast_to(np.abs(values[k]) ** 4, rates[k].shape) for k in rates}
    l4_4 = _propagate(graph, node, ones, 4)          # ||c||_4^4 = sum_i |w_i v_i|^4
    q_2 = _propagate(graph, node, {k: q[k] ** 2 for k in rates}, 0)  # ||q||_2^2 over the field
    return CurrentMoments(mean, var, np.sqrt(l4_4) * np.sqrt(q_2))


def source_spikes(net, x: np.ndarray, rates: Mapping[str, np.ndarray]):
    """Rates and spike values of every source of a rate-coded network, for :func:`current_moments`.

    Parameters
    ----------
    net : SpikingNetwork
        An ``if`` network (neuron nodes with a ``threshold``).
    x : ndarray, shape (B, *input_shape)
        The analog inputs.
    rates : mapping of str to ndarray, shape (B, *node_shape)
        Spike probability per step of each neuron node (measured ``count / T``, or the ANN
        limit's ``clip(a, 0, theta) / theta``).

    Returns
    -------
    (rates, values) : dicts of str to ndarray
        The input under ``poisson`` encoding spikes ``sign(x)`` with probability ``|x|``; under
        ``analog`` encoding it is the constant ``x`` (rate 1, no variance).
    """
    if net.encoding == "poisson":
        r, v = {INPUT: np.abs(x)}, {INPUT: np.sign(x)}
    elif net.encoding == "analog":
        r, v = {INPUT: np.ones_like(x)}, {INPUT: x}
    else:
        raise OptionError(f"spike statistics: encoding {net.encoding!r} is not rate coding")
    for name in net.neuron_nodes():
        node = net.graph.node(name)
        if "threshold" not in node.params:
            raise OptionError(f"spike statistics: neuron node '{name}' ({node.op}) has no "
                              f"threshold")
        r[name] = rates[name]
        v[name] = node.params["threshold"].reshape((1, -1) + (1,) * (rates[name].ndim - 2))
    return r, v


def limit_rates(net, x: np.ndarray) -> dict:
    """Spike probability per step of every neuron node in the ANN limit: ``clip(a,0,θ)/θ``."""
    from refsnn.sim.network import ann_limit

    _, lim = ann_limit(net, x, all_nodes=True)
    out = {}
    for name in net.neuron_nodes():
        theta = net.graph.node(name).params["threshold"]
        out[name] = lim[name] / theta.reshape((1, -1) + (1,) * (lim[name].ndim - 2))
    return out
