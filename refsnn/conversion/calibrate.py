"""Calibration in bounded memory: exact percentiles of activations streamed over the data.

Threshold balancing (:func:`refsnn.conversion.threshold.balance`) takes a percentile of each
ReLU's activations over the whole calibration set. Holding all of them (today's
``np.percentile`` on one array) needs memory that grows with the set: about 9.6 GB for the
LeNet on the 60,000 MNIST training images. Here the reference forward
(:func:`refsnn.ann.forward`) runs on chunks of samples, and each percentile is found by exact
selection of the two order statistics it interpolates:

1. The rank(s) are known before any data is read: ``n`` values per layer (or channel), index
   ``(n - 1) · q`` as NumPy's default ``linear`` method computes it.
2. If the values at or above the lower rank (or at or below the upper one) are few, one pass
   keeps exactly those (a running top-``m``, the rest dropped against the running cut-off): the
   99.9th percentile keeps 0.1 % of the values.
3. Otherwise a pass counts the values in a histogram over the top bits of an order-preserving
   integer key of each float (sign-corrected IEEE bits), then repeats on the bucket that holds
   the rank, until the bucket's values are few enough for step 2, or the key is fixed.

Memory is bounded by ``budget`` values held at once (plus one chunk of activations), whatever
the size of the calibration set; ties, negative values, ``±inf`` and NaN (whose percentile is
NaN, as NumPy's) are handled. The interpolation repeats NumPy's arithmetic on the two values
(same dtypes, same weak-scalar rules), so the result equals ``np.percentile`` bit for bit
(tests/test_calibration.py checks it with Hypothesis) -- except the sign of a zero result when
``-0.0`` and ``0.0`` both occur, which in NumPy depends on where its partition leaves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from refsnn import ann
from refsnn.ann_fast import FORWARD_OPS

#: Values held at once by the selection, over all layers and channels (plus one chunk of
#: activations): 128 MB at float64.
BUDGET = 1 << 24
#: Key bits resolved per histogram pass (a histogram of 4096 counts per bucket refined).
DIGIT_BITS = 12
#: Samples per forward chunk; the last chunk takes the remainder (so chunks hold CHUNK to
#: 2 CHUNK - 1 samples): BLAS picks its kernel by the size of a product, and a small one
#: can round differently from the whole-batch product (see tests/test_calibration.py).
CHUNK = 512

#: ``progress(pass_index, samples_done, samples_total)``, called after each chunk.
Progress = Callable[[int, int, int], None]


def chunk_bounds(total: int, chunk: int | None = None) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(total)``: blocks of ``chunk`` (default
    :data:`CHUNK`), the last one holding the remainder too (one block when ``total < 2 chunk``)."""
    chunk = CHUNK if chunk is None else chunk
    starts = list(range(0, total, chunk)) or [0]
    if len(starts) > 1 and total - starts[-1] < chunk:
        starts.pop()
    return [(s, stops) for s, stops in zip(starts, starts[1:] + [total])]


def _keys(v: np.ndarray) -> np.ndarray:
    """Order-preserving unsigned keys of finite-or-infinite floats (NaN excluded)."""
    v = v + v.dtype.type(0.0)  # -0.0 -> +0.0: equal values, equal keys
    bits = v.view(np.uint64 if v.dtype.itemsize == 8 else np.uint32)
    sign = bits.dtype.type(1) << bits.dtype.type(8 * v.dtype.itemsize - 1)
    return np.where(bits & sign, ~bits, bits | sign)


def _value(key: int, dtype: np.dtype):
    """The float whose :func:`_keys` is ``key``."""
    width = 8 * dtype.itemsize
    udt = np.uint64 if width == 64 else np.uint32
    k = udt(key)
    sign = udt(1) << udt(width - 1)
    bits = k ^ sign if k & sign else ~k
    return np.array([bits], dtype=udt).view(dtype)[0]


@dataclass
class _Query:
    """Order statistics (consecutive ``ranks``, 0-based among the values whose key lies in
    ``[lo, lo + 2**bits)``) of one group: a layer (``channel`` None) or a channel."""

    name: str
    channel: int | None
    ranks: list[int]
    lo: int
    bits: int
    count: int
    found: dict = field(default_factory=dict)
    #: ``(parent query, ranks of the parent's range below this one's)`` once refined
    origin: tuple | None = None

    def keep(self) -> tuple[str, int]:
        """Collecting: keep the ``m`` largest (``"top"``) or smallest (``"bottom"``)."""
        top, bottom = self.count - self.ranks[0], self.ranks[-1] + 1
        return ("top", top) if top <= bottom else ("bottom", bottom)


@dataclass
class _Collector:
    """A running top-/bottom-``m`` of a stream: memory at most ``2 m`` plus one chunk."""

    side: str
    m: int
    buf: np.ndarray
    cut: object = None

    def add(self, v: np.ndarray) -> None:
        if self.cut is not None:
            # a value equal to the cut-off leaves the multiset of the m extreme values as it is
            v = v[v > self.cut] if self.side == "top" else v[v < self.cut]
        self.buf = np.concatenate([self.buf, v])
        if self.buf.size > 2 * self.m:
            self.trim()

    def trim(self) -> None:
        b, m = self.buf, self.m
        if b.size > m:
            b = (np.partition(b, b.size - m)[b.size - m:] if self.side == "top"
                 else np.partition(b, m - 1)[:m])
        self.buf = b
        if b.size == m:
            self.cut = b.min() if self.side == "top" else b.max()


def _group(act: np.ndarray, channel: int | None) -> np.ndarray:
    return (act if channel is None else act[:, channel]).ravel()


def _in_range(q: _Query, v: np.ndarray, width: int):
    """``(values, keys)`` of ``v`` (NaN-free) whose key lies in the query's range."""
    if q.bits == width:
        return v, None
    keys = _keys(v)
    shift = keys.dtype.type(q.bits)
    inside = (keys >> shift) == keys.dtype.type(q.lo >> q.bits)
    return v[inside], keys[inside]


class StreamedPercentiles:
    """Exact percentiles of many nodes' activations, computed from passes over chunks.

    Parameters
    ----------
    passes : callable
        ``passes(index)`` starts pass ``index`` (0, 1, ...) over the calibration data and
        yields, per chunk, a mapping node name -> activations of shape ``(b, C, ...)`` (the
        same names, dtype and sample shape in every chunk and pass).
    samples : int
        The number of samples the passes cover (the sum of the ``b``).
    percentile : float
        In ``[0, 100]``, NumPy's default ``linear`` method; a Python ``int``/``float`` gives
        NumPy's weak-scalar result dtype, a NumPy scalar NumPy's promoted one.
    per_channel : collection of str
        Nodes that also get one percentile per channel (axis 1).
    budget : int
        Values held at once by the selection (memory bound, plus one chunk).
    """

    def __init__(self, passes: Callable[[int], Iterable[Mapping[str, np.ndarray]]],
                 samples: int, percentile, per_channel=(), budget: int = BUDGET):
        self.passes, self.samples, self.percentile = passes, int(samples), percentile
        self.per_channel, self.budget = set(per_channel), int(budget)

    def run(self) -> dict[str, tuple]:
        """Run the passes.

        Returns
        -------
        dict of str to (layer, channels, dtype)
            Per node: the layer's percentile (a NumPy scalar, as ``np.percentile(a, p)``),
            for nodes in ``per_channel`` the channels' (ndarray, shape (C,), as
            ``np.percentile(a.swapaxes(0, 1).reshape(C, -1), p, axis=1)``), else None, and
            the activations' dtype.
        """
        index, first = 0, True
        queries, done, meta = [], [], {}
        while first or queries:
            plan, waiting = self._plan(queries) if not first else ([], [])
            states = {id(q): self._state(q, mode) for q, mode in plan}
            for chunk in self.passes(index):
                if first:
                    first = self._learn(chunk, meta, queries)
                    plan, waiting = self._plan(queries)
                    states = {id(q): self._state(q, mode) for q, mode in plan}
                for q, mode in plan:
                    self._feed(q, mode, states[id(q)], chunk[q.name], meta[q.name])
            if first:
                raise ValueError("calibration passes yielded no chunk")
            queries = waiting
            for q, mode in plan:
                resolved, refined = self._finish(q, mode, states[id(q)], meta[q.name])
                done += resolved
                queries += refined
            index += 1
        self.passes_run = index
        return self._results(done, meta)

    # -- setup -----------------------------------------------------------------------------

    def _learn(self, chunk, meta, queries) -> bool:
        """From the first chunk: dtypes, group sizes and the ranks each group needs."""
        for name, act in chunk.items():
            if act.dtype.kind != "f":
                raise TypeError(f"node '{name}': activations must be float, not {act.dtype}")
            per_sample = int(np.prod(act.shape[1:], dtype=np.int64))
            c = act.shape[1]
            groups = [(None, self.samples * per_sample)]
            if name in self.per_channel:
                groups += [(ch, self.samples * per_sample // c) for ch in range(c)]
            meta[name] = {"dtype": act.dtype, "c": c, "nan": np.zeros(c + 1, bool),
                          "n": dict(groups)}
            for ch, n in groups:
                lo_rank, hi_rank, _ = _ranks(n, self.percentile)
                ranks = sorted({lo_rank, hi_rank})
                queries.append(_Query(name, ch, ranks, 0, 8 * act.dtype.itemsize, n))
        return False

    def _plan(self, queries):
        """Which queries this pass serves (collect or histogram), within the budget."""
        plan, waiting, used = [], [], 0
        hist = 1 << DIGIT_BITS
        for q in sorted(queries, key=lambda q: q.keep()[1]):
            side, m = q.keep()
            if q.bits == 0 or used + 2 * m <= self.budget:
                plan.append((q, side))
                used += 0 if q.bits == 0 else 2 * m
            elif used + hist <= self.budget or not plan:
                plan.append((q, "hist"))
                used += hist
            else:
                waiting.append(q)
        return plan, waiting

    def _state(self, q: _Query, mode: str):
        if mode == "hist":
            return np.zeros(1 << min(DIGIT_BITS, q.bits), np.int64)
        return _Collector(mode, q.keep()[1], np.empty(0, dtype=np.float64))

    # -- one chunk -------------------------------------------------------------------------

    def _feed(self, q: _Query, mode, state, act: np.ndarray, meta) -> None:
        v = _group(act, q.channel)
        nan = np.isnan(v)
        if nan.any():
            meta["nan"][-1 if q.channel is None else q.channel] = True
            v = v[~nan]
        width = 8 * act.dtype.itemsize
        if q.bits == 0:
            return
        v, keys = _in_range(q, v, width)
        if mode != "hist":
            if state.buf.dtype != v.dtype:
                state.buf = state.buf.astype(v.dtype)
            state.add(v)
            return
        if keys is None:
            keys = _keys(v)
        d = min(DIGIT_BITS, q.bits)
        digit = (keys >> keys.dtype.type(q.bits - d)) & keys.dtype.type((1 << d) - 1)
        state += np.bincount(digit.astype(np.intp), minlength=1 << d)

    # -- end of a pass ---------------------------------------------------------------------

    def _finish(self, q: _Query, mode, state, meta):
        """``(resolved queries, refined queries)`` after a pass."""
        nan = meta["nan"][-1 if q.channel is None else q.channel]
        if nan or q.bits == 0:
            value = np.array(np.nan if nan else _value(q.lo, meta["dtype"]), meta["dtype"])
            q.found = {r: value[()] for r in q.ranks}
            return [q], []
        if mode != "hist":
            state.trim()
            b = state.buf
            base = q.count - b.size if mode == "top" else 0
            idx = [r - base for r in q.ranks]
            part = np.partition(b, idx)
            q.found = {r: part[i] for r, i in zip(q.ranks, idx)}
            return [q], []
        d = min(DIGIT_BITS, q.bits)
        below = np.concatenate([[0], np.cumsum(state)])
        refined: dict[int, _Query] = {}
        for r in q.ranks:
            j = int(np.searchsorted(below, r, side="right")) - 1
            if j not in refined:
                refined[j] = _Query(q.name, q.channel, [], q.lo + (j << (q.bits - d)),
                                    q.bits - d, int(state[j]))
            refined[j].ranks.append(r - int(below[j]))
        out = []
        for j, sub in refined.items():
            sub.origin = (q, int(below[j]))
            out.append(sub)
        return [], out

    def _results(self, done, meta) -> dict[str, tuple]:
        values: dict[tuple, dict[int, object]] = {}
        for q in done:
            offset, root = 0, q
            while root.origin is not None:
                parent, base = root.origin
                offset += base
                root = parent
            values.setdefault((q.name, q.channel), {}).update(
                {r + offset: v for r, v in q.found.items()})
        out = {}
        for name, m in meta.items():
            def pick(ch):
                lo_rank, hi_rank, _ = _ranks(m["n"][ch], self.percentile)
                found = values[(name, ch)]
                return found[lo_rank], found[hi_rank]
            layer = _interpolate(*(np.array([v], m["dtype"]) for v in pick(None)),
                                 m["n"][None], self.percentile)[0]
            chans = None
            if name in self.per_channel:
                pairs = [pick(ch) for ch in range(m["c"])]
                chans = _interpolate(np.array([a for a, _ in pairs], m["dtype"]),
                                     np.array([b for _, b in pairs], m["dtype"]),
                                     m["n"][0], self.percentile)
            out[name] = (layer, chans, m["dtype"])
        return out


def _virtual_index(n: int, percentile):
    """NumPy's ``linear`` virtual index ``(n - 1) q`` and ``q``'s weak-scalar flag."""
    q = np.true_divide(percentile, 100, out=...)
    if not (q >= 0 and q <= 1):
        raise ValueError(f"percentile must be in [0, 100], found {percentile}")
    return (n - 1) * q, type(percentile) in (int, float)


def _ranks(n: int, percentile) -> tuple[int, int, object]:
    """The 0-based ranks ``(below, above)`` whose values the percentile interpolates, and
    the weight of ``above``, as NumPy computes them (past the end both are the last)."""
    vi, weak = _virtual_index(n, percentile)
    if vi >= n - 1:
        prev = -1  # NumPy's index of the last value, which also enters its weight
        lo = hi = n - 1
    else:
        prev = int(np.floor(vi))
        lo, hi = prev, prev + 1
    gamma = np.asanyarray(vi - np.intp(prev), dtype=np.asarray(vi).dtype)
    return lo, hi, float(gamma) if weak else gamma


def _interpolate(a: np.ndarray, b: np.ndarray, n: int, percentile) -> np.ndarray:
    """``a + (b - a) t`` (``b - (b - a)(1 - t)`` for ``t >= 1/2``), in the dtypes NumPy's
    ``linear`` percentile uses for values ``a``, ``b`` of ``n``."""
    _, _, t = _ranks(n, percentile)
    diff = b - a
    result = np.add(a, diff * t)
    if t >= 0.5:
        result = np.subtract(b, diff * (1 - t), casting="unsafe",
                             dtype=type(result.dtype))
    return result


def streamed_percentile(chunks: Callable[[], Iterable[np.ndarray]], samples: int,
                        percentile, axis1: bool = False, budget: int = BUDGET):
    """``np.percentile`` of the concatenation of ``chunks()`` (along axis 0), streamed.

    With ``axis1``, the per-channel percentiles (``np.percentile`` of the values of each
    index along axis 1) instead of the whole array's. ``chunks`` is called once per pass.
    """
    def passes(index):
        return ({"a": c} for c in chunks())

    layer, chans, _ = StreamedPercentiles(passes, samples, percentile,
                                       {"a"} if axis1 else (), budget).run()["a"]
    return chans if axis1 else layer


def forward_passes(graph, x: np.ndarray, names, progress: Progress | None = None,
                   chunk: int | None = None, outputs: list | None = None,
                   forward_ops: Mapping | None = None):
    """``passes(index)`` for :class:`StreamedPercentiles`: the reference forward
    (:func:`refsnn.ann.forward`) of ``graph`` over chunks of ``x``, keeping the nodes ``names``;
    its convolutions compiled (:mod:`refsnn.ann_fast`, the reference's results bit for bit).

    ``progress`` (if given) is called after each chunk; the first pass appends each chunk's
    graph output to ``outputs`` (if given). ``chunk`` defaults to :data:`CHUNK`.
    ``forward_ops`` adds operators (e.g. the neuron kinds' ANN forms of a converted graph),
    as :func:`refsnn.ann.forward`'s argument does.
    """
    bounds = chunk_bounds(x.shape[0], CHUNK if chunk is None else chunk)
    ops = {**(forward_ops or {}), **FORWARD_OPS}

    def passes(index: int) -> Iterator[dict]:
        for start, stop in bounds:
            out, acts = ann.forward(graph, x[start:stop], all_nodes=True, forward_ops=ops)
            if index == 0 and outputs is not None:
                outputs.append(out)
            yield {name: acts[name] for name in names}
            del acts
            if progress is not None:
                progress(index, stop, x.shape[0])

    return passes


def element_max(passes: Callable[[int], Iterable[Mapping[str, np.ndarray]]],
                transform: Callable[[np.ndarray], np.ndarray] | None = None) -> dict:
    """Per node, the maximum over the samples of each element, from one pass over chunks.

    The maximum is exact in any grouping (it only compares; NaN propagates as in
    ``np.max``), so it equals ``np.max(transform(a), axis=0)`` of the whole set bit for bit.

    Parameters
    ----------
    passes : callable
        As for :class:`StreamedPercentiles` (only pass 0 is run): chunks of activations,
        shape ``(b, *sample_shape)`` per node.
    transform : callable, optional
        Applied to each chunk's activations first (e.g. ``np.abs``).

    Returns
    -------
    dict of str to ndarray, shape sample_shape
    """
    out: dict[str, np.ndarray] = {}
    for chunk in passes(0):
        for name, act in chunk.items():
            m = np.max(act if transform is None else transform(act), axis=0)
            out[name] = m if name not in out else np.maximum(out[name], m)
    return out


def running_sum(total: np.ndarray | None, part: np.ndarray, axes: tuple) -> np.ndarray:
    """``np.add.reduce`` over ``axes`` (which hold the sample axis 0) of all chunks so far.

    NumPy reduces a C-ordered array slab by slab along axis 0 (each slab's contribution
    added to the running result in order), so the sum of the whole set is continued by
    reducing ``[head, part]``, where ``head`` is one slab holding ``total`` at index 0 of
    the other reduced axes and zeros elsewhere: adding zeros is exact. The result equals the
    whole set's ``np.add.reduce`` bit for bit (tests/test_calibration.py checks it on random
    shapes and cuts, so a NumPy that summed in another order would fail there), and
    ``np.true_divide(sum, count)`` its ``np.mean``.

    Parameters
    ----------
    total : ndarray or None
        The sum over the chunks before ``part`` (None for the first chunk).
    part : ndarray, shape (b, ...)
        The next chunk.
    axes : tuple of int
        The reduced axes, 0 among them.

    Returns
    -------
    ndarray
        The sum, shape of ``part`` without ``axes``.

    Raises
    ------
    ValueError
        When the kept axes hold one element (:func:`sums_by_slab` is false).
    """
    if not sums_by_slab(part.shape, axes):
        raise ValueError(f"running_sum: NumPy sums shape {part.shape} over {axes} pairwise "
                         f"as one run; a sum continued over chunks would round otherwise")
    if total is not None:
        head = np.zeros((1,) + part.shape[1:], part.dtype)
        head[tuple(0 if i in axes else slice(None) for i in range(part.ndim))] = total
        part = np.concatenate([head, part])
    return np.add.reduce(part, axis=axes)


def sums_by_slab(shape: tuple, axes: tuple) -> bool:
    """Whether NumPy's ``np.add.reduce`` over ``axes`` adds the slabs along axis 0 in order
    (so :func:`running_sum` continues it exactly): when the kept axes hold more than one
    element. Otherwise (a 1-D array, or one kept element) NumPy merges all axes into one run
    and sums it pairwise, an order no chunking reproduces; the caller keeps the whole set.
    """
    return int(np.prod([n for i, n in enumerate(shape) if i not in axes], dtype=np.int64)) > 1
