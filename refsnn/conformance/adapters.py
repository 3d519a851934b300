"""The shipped adapters: refsnn's own simulator, and SpikingJelly (needs torch)."""

from __future__ import annotations

import numpy as np

from refsnn.conformance import Adapter


class RefsnnAdapter(Adapter):
    """refsnn's Numba simulator (the golden traces were written by the NumPy reference)."""

    #: refsnn backend the adapter runs (a subclass may pick the NumPy reference)
    backend = "numba"

    def simulator(self, net):
        """The :class:`~refsnn.sim.simulator.Simulator` to run ``net`` with (a hook for
        subclasses, e.g. tests that inject a bug into its kernels)."""
        from refsnn.sim.simulator import Simulator

        return Simulator(net, self.backend)

    def run(self, net, x, steps, encoded=None):
        sim = self.simulator(net)
        names = [op.node.name for op in sim.ops if op.is_neuron]
        return sim.run(x, [steps], rasters=names, encoded=encoded).rasters

    def run_encoded(self, net, encoded):
        # x only gives the batch its shape: the recorded input replaces the encoder
        return self.run(net, np.zeros(encoded.shape[1:]), len(encoded), encoded)


class RefsnnFloat32Adapter(RefsnnAdapter):
    """refsnn's simulator in float32 (every parameter cast, so every sum is float32): an
    example of a backend choosing float32 tolerances."""

    #: a float32 potential is off by a few float32 ulps (eps 1.2e-7) after T additions
    rtol = 1e-4

    def simulator(self, net):
        return super().simulator(as_float32(net))


def as_float32(net):
    """``net`` with float32 parameters (and readout_init): refsnn then simulates in float32."""
    from dataclasses import replace

    from refsnn.sim.network import SNN_OPS

    graph = net.graph.edit().commit(dtype=np.float32, ops=SNN_OPS)
    init = None if net.readout_init is None else np.asarray(net.readout_init, np.float32)
    return replace(net, graph=graph, readout_init=init)


class SpikingJellyAdapter(Adapter):
    """SpikingJelly IFNodes, 0.0.0.0.14 or 2.0 (:mod:`refsnn.interop.spikingjelly`; per-channel
    thresholds only on 2.0)."""

    def unsupported(self, net):
        try:
            from refsnn.interop.spikingjelly import SpikingJellyNetwork
        except ImportError as e:
            return f"torch or SpikingJelly not installed ({e})"
        from refsnn.errors import ConversionError

        try:
            SpikingJellyNetwork(net)
        except ConversionError as e:
            return str(e)
        return None

    def run(self, net, x, steps, encoded=None):
        from refsnn.interop.spikingjelly import SpikingJellyNetwork

        rasters, _ = SpikingJellyNetwork(net).run(x, steps, encoded=encoded)
        return rasters

    def run_encoded(self, net, encoded):
        return self.run(net, np.zeros(encoded.shape[1:]), len(encoded), encoded)
