"""The benchmark's contenders: what runs a workload, by kind, shared by ``run.py`` and ``memprobe.py``.

A :class:`Contender` is a row of the report: a kind (a key of ``KINDS``), a precision and a
thread count. ``build(spec, net, graph, torch)`` turns it into ``run(x, steps) -> (readout,
counts)``, where ``net`` is the workload converted in the contender's precision and ``graph``
the source ANN. The same builder runs in the timing process and in the fresh processes that
measure peak memory, so both measure the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba

import peers


@dataclass(frozen=True)
class Contender:
    """One row of the report.

    Attributes
    ----------
    name : str
        As printed.
    kind : str
        A key of ``KINDS``.
    precision : {"float64", "float32"}
    threads : int
        Numba threads (refsnn kinds); the torch kinds use ``torch.get_num_threads()``.
    is_peer : bool
        Counted as a peer for *vs best peer* (another simulator of the same network).
    optional : bool
        Skipped when one pass would take longer than the run's limit (``--skip-slow``).
    note : str
        ``"oracle"`` or ``"ann"`` for the rows that are neither refsnn's contender nor a peer.
    """

    name: str
    kind: str
    precision: str
    threads: int = 1
    is_peer: bool = False
    optional: bool = False
    note: str = ""

    @property
    def needs_torch(self) -> bool:
        return KINDS[self.kind][1]


def _refsnn(backend):
    def build(spec, net, graph, torch):
        from refsnn.sim.simulator import Simulator
        sim = Simulator(net, backend)

        def run(x, steps):
            numba.set_num_threads(spec.threads)
            r = sim.run(x, steps)
            return r.readout[steps], r.counts
        run.sim = sim
        return run
    return build


def _numpy_dense(spec, net, graph, torch):
    return peers.DenseNumpy(net, spec.precision).run


def _torch_dense(spec, net, graph, torch):
    return peers.DenseTorch(net, torch, spec.precision).run


def _spikingjelly(spec, net, graph, torch):
    return peers.SpikingJellyMultiStep(net, torch).run


def _ann(spec, net, graph, torch):
    return peers.AnnTorch(graph, torch, spec.precision).run


#: Contender kind -> (builder, needs torch).
KINDS = {
    "refsnn": (_refsnn("numba"), False),
    "oracle": (_refsnn("numpy"), False),
    "numpy-dense": (_numpy_dense, False),
    "torch-dense": (_torch_dense, True),
    "spikingjelly": (_spikingjelly, True),
    "ann-torch": (_ann, True),
}


def build(spec: Contender, net, graph, torch):
    """``run(x, steps) -> (readout, counts)`` for ``spec``."""
    return KINDS[spec.kind][0](spec, net, graph, torch)


def contenders(method: str, threads: int, oracle: bool, torch_ok: bool, sj_ok: bool):
    """The rows of one (workload, method), refsnn's float64 row first (the reference).

    The dense and SpikingJelly peers implement IF neurons only; a signGD workload has no peer
    (its rows say so) but keeps the ANN row for scale.
    """
    f64, f32 = "float64", "float32"
    out = [Contender(f"refsnn numba {threads}t 64", "refsnn", f64, threads),
           Contender(f"refsnn numba {threads}t 32", "refsnn", f32, threads)]
    if threads != 1:
        out.append(Contender("refsnn numba 1t 64", "refsnn", f64, 1, optional=True))
    if oracle:
        out.append(Contender("refsnn numpy (oracle) 64", "oracle", f64, threads, note="oracle"))
    if method == "if":
        out += [Contender("numpy dense 64", "numpy-dense", f64, is_peer=True),
                Contender("numpy dense 32", "numpy-dense", f32, is_peer=True)]
        if torch_ok:
            out += [Contender("torch dense 32", "torch-dense", f32, is_peer=True),
                    Contender("torch dense 64", "torch-dense", f64, is_peer=True)]
        if torch_ok and sj_ok:
            out += [Contender("spikingjelly multi-step 32", "spikingjelly", f32, is_peer=True),
                    Contender("spikingjelly multi-step 64", "spikingjelly", f64, is_peer=True,
                              optional=True)]
    if torch_ok:
        out.append(Contender("ANN forward torch 32", "ann-torch", f32, note="ann"))
    return out
