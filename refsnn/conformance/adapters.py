"""The shipped adapters: refsnn's own simulator, and SpikingJelly (needs torch)."""

from __future__ import annotations

from refsnn.conformance import Adapter


class RefsnnAdapter(Adapter):
    """refsnn's Numba simulator (the golden traces were written by the NumPy reference)."""

    def run(self, net, x, steps):
        from refsnn.sim.simulator import Simulator

        sim = Simulator(net, "numba")
        names = [op.node.name for op in sim.ops if op.is_neuron]
        return sim.run(x, [steps], rasters=names).rasters


class SpikingJellyAdapter(Adapter):
    """SpikingJelly IFNodes (:mod:`refsnn.interop.spikingjelly`)."""

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

    def run(self, net, x, steps):
        from refsnn.interop.spikingjelly import SpikingJellyNetwork

        rasters, _ = SpikingJellyNetwork(net).run(x, steps)
        return rasters
