"""What NIR's kinds share (``docs/semantics.md``, "NIR graphs"): parameters of the node's
full per-sample shape (the NIR reader broadcasts NIR's scalars and per-channel arrays), the
forward Euler step with constants derived once per layer from ``schedule["dt"]`` (``dt`` is
not a graph property), and ``compare``'s replay. Nothing here imports ``nir``.

A NIR node has one meaning; a framework that runs the graph may implement another.
``refsnn compare`` replays the reference's recorded input current through variants of the
node's update (:func:`replay_nir`) and names the smallest set of departures that reproduces
the other trace's spikes exactly:

``delay``        the other's spikes are the reference's one step later (a delay per layer)
``comparison``   fires on ``v ≥ v_threshold`` instead of ``v > v_threshold`` (another tie rule)
``reset``        resets by subtracting the threshold (``subtract``), several thresholds at
                 once (``multi``, several spikes per step) or to 0 ignoring ``v_reset``
                 (``zero``) instead of to ``v_reset``
``bound``        the potential is kept at or above ``−v_threshold`` or 0 (a bound)
``gain``         the input is not multiplied by ``r`` (nor, for IF, by ``dt``)
``leak``         the kind's other leaks (:data:`refsnn.neurons.nir_if.LEAKS`,
                 :data:`refsnn.neurons.lif.LEAKS`)
``threshold``    the threshold times ``k`` reproduces the spikes (``k`` in 0.5, 0.55, ..., 2),
                 or the count ratio ``k`` the counts within one (a scaled threshold)
``rounding``     each neuron's first mismatch has the reference's potential within
                 ``rtol·|v_threshold|`` of the threshold (a tie broken by rounding; benign)

A kind may add departures of its own (:func:`hypotheses`' ``own``; e.g. ``CubaLIF``'s
``current``, ``spike`` and ``w_in``, :data:`refsnn.neurons.cuba_lif.OWN`).

Departures are tried one at a time (each its own class), then two to four together
(``combined``): the first setting found is reported, e.g. ``reset=multi + bound=-theta``.

The leaky kinds' discretisations (:data:`DISCRETISATIONS`) share :func:`rates`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from refsnn.model.ops import AttrSpec, ShapeRuleError
from refsnn.neurons.base import StepOp
from refsnn.neurons.replay import count_ratio, delay, first_mismatch, guarded


def full(*names):
    """Shape rule: each named parameter has the node's input shape."""
    def shapes(attrs, in_shapes):
        return {n: in_shapes[0] for n in names}
    return shapes


def same(attrs, in_shapes, params):
    """Shape rule: the output has the input's shape."""
    return in_shapes[0]


def flat(node, name):
    """A parameter of ``node``, flattened per sample: (N,)."""
    return np.ascontiguousarray(np.asarray(node.params[name]).reshape(-1))


#: The discretisations of a leaky NIR kind's ODE ``τ·ds/dt = −s + u`` (``docs/semantics.md``,
#: "NIR graphs"): forward Euler, every state from the previous step's values (default);
#: forward Euler with the membrane reading the synaptic current of the same step (Norse,
#: snnTorch); the exponential (zero-order hold) update, ``u`` held over the step.
DISCRETISATIONS = ("euler", "euler-same-step", "exact")
#: The node attribute choosing the discretisation (a one-state kind, ``lif`` or ``li``, has no
#: other state to lag: ``euler-same-step`` is ``euler`` there).
DISCRETISATION = {"discretisation": AttrSpec("str", "euler", choices=DISCRETISATIONS)}
#: Its trace check (:attr:`refsnn.neurons.base.TraceSpec.checks`).
DISCRETISATION_CHECK = {"discretisation": (lambda v: isinstance(v, str) and v in DISCRETISATIONS,
                                           f"one of {list(DISCRETISATIONS)}")}


def rates(dt, tau, discretisation):
    """Per-neuron constants of ``s ← keep·s + rate·u`` (``keep``) and of
    ``s ← s + rate·(u − s)`` for one step of ``τ·ds/dt = −s + u``.

    ``euler`` (and ``euler-same-step``): ``rate = fl(dt/τ)`` (in the dtype of ``tau``),
    ``keep = fl(1 − rate)``. ``exact``: with ``h = dt/τ`` in float64, ``rate =
    fl(−expm1(−h))`` and ``keep = fl(exp(−h))``, each computed by the C library (Python's
    :mod:`math`, not NumPy's vectorised ``exp``, whose result may depend on the CPU) and
    rounded once to the dtype.

    Parameters
    ----------
    dt : scalar of the parameters' dtype
    tau : ndarray, shape (N,)
        Finite, non-zero (negative allowed).
    discretisation : str
        One of :data:`DISCRETISATIONS`.

    Returns
    -------
    keep, rate : ndarray, shape (N,), the dtype of ``tau``

    Raises
    ------
    ValueError
        Where a constant is not finite in the dtype (``exact`` with ``dt/τ`` below about
        −709 in float64, −88 in float32; ``euler`` with ``dt/τ`` beyond the dtype's range).
    """
    dtype = np.asarray(tau).dtype
    with np.errstate(over="ignore"):
        if discretisation == "exact":
            h = [float(dt) / float(t) for t in np.asarray(tau, np.float64).reshape(-1)]
            try:
                keep = np.array([math.exp(-x) for x in h], np.float64).astype(dtype)
                rate = np.array([-math.expm1(-x) for x in h], np.float64).astype(dtype)
            except OverflowError:
                keep = rate = np.array([np.inf])
        else:
            rate = (np.asarray(dt, dtype) / tau).astype(dtype)
            keep = (np.asarray(1, dtype) - rate).astype(dtype)
    if not (np.all(np.isfinite(keep)) and np.all(np.isfinite(rate))):
        raise ValueError(f"a decay factor over the step is not finite in {dtype.name} "
                         f"(dt = {float(dt)}, {discretisation})")
    return keep, rate


def nonzero(*names):
    """Shape rule: the output has the input's shape; the named parameters, where present,
    must be finite and non-zero (a time constant of either sign)."""
    def out(attrs, in_shapes, params):
        for n in names:
            if n in params:
                a = np.asarray(params[n])
                if not np.all(np.isfinite(a)) or np.any(a == 0):
                    raise ShapeRuleError(n, "finite non-zero values", "0, NaN or inf")
        return in_shapes[0]
    return out


def time_step(node, schedule):
    """The time step from the network's schedule, as the parameters' dtype."""
    dt = schedule.get("dt") if schedule else None
    if dt is None:
        raise ValueError(f"node '{node.name}': a NIR network needs schedule['dt']")
    return np.asarray(dt, dtype=np.asarray(node.params[next(iter(node.params))]).dtype)


class NirState(StepOp):
    """A NIR node with a potential ``v`` (B, N), initially 0 (NIR gives no initial state),
    advanced by its kernel ``step(v, current, *constants.values())``; subclasses define
    ``constants_of(node, dt) -> {name: (N,) array}`` in the kernel's argument order."""

    stateless = False

    def __init__(self, node, graph, backend, schedule):
        super().__init__(node, graph, backend, schedule)
        self.n = int(np.prod(self.shape))
        self.dt = time_step(node, schedule)
        self.constants = self.constants_of(node, self.dt)

    def init(self, batch):
        return np.zeros((batch, self.n), next(iter(self.constants.values())).dtype)

    def step(self, v, x):
        # the constants are named for traces and listed in the kernel's argument order
        out = self.kernels["step"](v, np.ascontiguousarray(x.reshape(v.shape)),
                                   *self.constants.values())
        return out.reshape(x.shape)


def finite(v) -> bool:
    """A trace check: real, non-empty, finite."""
    a = np.asarray(v)
    return a.dtype.kind in "fiu" and a.size > 0 and bool(np.all(np.isfinite(a)))


def param(layer, name, shape):
    """A trace layer's parameter ``name`` shaped (*shape)."""
    return np.asarray(layer.params[name]).reshape(shape)


# ------------------------------------------------------------------- compare's replays

def replay_nir(layer, charge, comparison=">", reset="value", bound=None, leak=None, scale=1.0,
               gain=None):
    """Replay a spiking NIR layer on its recorded current.

    ``charge(layer, v, current, one, leak) -> v`` is the kind's charge step (``one``: the
    input not multiplied by ``r``). With every keyword at its default this is the layer's own
    update (the same operations as its kernel).

    Returns
    -------
    spikes : bool ndarray, shape (T, B, *shape)
    pre : ndarray, shape (T, B, *shape)
        The potential before firing.
    """
    cur = layer.current
    shape, dt = cur.shape[2:], cur.dtype
    thr = (param(layer, "v_threshold", shape) * scale).astype(dt)
    v_reset = param(layer, "v_reset", shape).astype(dt)
    v = np.zeros(cur.shape[1:], dt)
    spikes, pre = np.zeros(cur.shape, bool), np.zeros_like(cur)
    for t in range(cur.shape[0]):
        v = charge(layer, v, cur[t], gain == "1", leak)
        if bound is not None:
            v = np.maximum(v, -thr if bound == "-theta" else np.zeros_like(v))
        pre[t] = v
        fired = v > thr if comparison == ">" else v >= thr
        spikes[t] = fired
        if reset == "value":
            v = np.where(fired, v_reset, v)
        elif reset == "subtract":
            v = np.where(fired, v - thr, v)
        elif reset == "multi":
            v = np.where(fired, v - np.floor(v / thr) * thr, v)
        else:
            v = np.where(fired, np.zeros_like(v), v)
        v = v.astype(dt)
    return spikes, pre


def _replayable(ref):
    return ref.current is not None and "v_threshold" in ref.params


def _describe(changes: dict) -> str:
    return " + ".join(f"{k}={'-theta' if v == '-theta' else v}" for k, v in changes.items())


#: Departure name -> the values tried, the reference's own value first (``leak``: the kind's).
DEPARTURES = {
    "comparison": (">", ">="),
    "reset": ("value", "subtract", "multi", "zero"),
    "bound": (None, "-theta", "0"),
    "gain": (None, "1"),
}
#: Two to four departures together, for the ``combined`` hypothesis.
COMBINED = [keys for size in (2, 3, 4) for keys in
            itertools.combinations(("comparison", "reset", "bound", "gain", "leak"), size)]
#: Threshold factors tried for an exact reproduction (then the count ratio, within one).
SCALES = tuple(np.round(np.arange(0.5, 2.0001, 0.05), 2))


def hypotheses(charge, leaks, own=None) -> dict:
    """``compare``'s hypotheses for a spiking NIR kind with charge step ``charge`` and the
    leaks ``leaks`` a framework may use instead of its own: name -> (test, benign).

    ``own``: the kind's own departures, name -> the values tried (None, the reference's own
    setting, first), tried after the shared ones and in ``combined``. With ``own``,
    ``charge`` is a factory: ``charge(**own_settings)`` returns a fresh charge step for one
    replay (a kind with more state than ``v`` keeps the rest in that step).
    """
    own = dict(own or {})
    departures = {**DEPARTURES, "leak": (None,) + tuple(leaks), **own}
    combined = COMBINED if not own else [
        keys for size in (2, 3, 4) for keys in itertools.combinations(tuple(departures), size)]

    def replay(ref, **changes):
        if not own:
            return replay_nir(ref, charge, **changes)
        mine = {k: changes.pop(k) for k in list(changes) if k in own}
        return replay_nir(ref, charge(**mine), **changes)

    def search(keys_list):
        """The first setting of any of ``keys_list`` that reproduces the spikes."""
        def test(ref, other, rtol):
            for keys in keys_list:
                for values in itertools.product(*(departures[k][1:] for k in keys)):
                    changes = dict(zip(keys, values))
                    if np.array_equal(replay(ref, **changes)[0], other):
                        return True, f"replay with {_describe(changes)} reproduces it"
            return False, ""
        return test

    def rounding(ref, other, rtol):
        _, pre = replay(ref)
        thr = np.broadcast_to(param(ref, "v_threshold", pre.shape[2:]), pre.shape[1:])
        t, idx = first_mismatch(ref.spikes, other)
        margins = np.abs(pre[(t,) + idx] - thr[idx])
        worst = float(margins.max(initial=0.0))
        return bool((margins <= rtol * np.abs(thr[idx])).all()), \
            f"largest margin |v - v_threshold| = {worst:.3g}"

    def threshold(ref, other, rtol):
        if not other.any():
            return False, ""
        for k in SCALES:
            if abs(k - 1) > rtol and np.array_equal(replay(ref, scale=k)[0], other):
                return True, f"threshold x {k:.4g} reproduces it"
        return count_ratio(ref, other, rtol, lambda k: replay(ref, scale=k)[0])

    return {"delay": (delay, False), **guarded(_replayable, {
        **{key: (search([(key,)]), False)
           for key in ("comparison", "reset", "bound", "gain", "leak", *own)},
        "combined": (search(combined), False),
        "rounding": (rounding, True),
        "threshold": (threshold, False)})}
