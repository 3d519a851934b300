"""Conformance adapters through NIR: a converted network is exported to a NIR graph
(:mod:`refsnn.nir.writer`, float32 so that the threshold is float32's next float
below θ) and run by a framework's own NIR reader (:mod:`refsnn.nir.frameworks`), or
by refsnn's NIR importer (``nir-refsnn``, the round trip). Networks NIR cannot express
(reset by subtraction, u₀ = θ/2, BSNN, signGD, spike max pooling) are skipped with the
exporter's reason; a framework that cannot import or run the graph fails the case with its
own error."""

from __future__ import annotations

import numpy as np

from refsnn.conformance import Adapter


class NirAdapter(Adapter):
    """Base: ``framework`` is a key of :data:`refsnn.nir.frameworks.FRAMEWORKS`."""

    framework = ""
    #: the frameworks compute in float32 (nirtorch casts every parameter)
    rtol = 1e-4

    def unsupported(self, net):
        try:
            import nir  # noqa: F401
        except ImportError as e:
            return f"nir not installed ({e})"
        from refsnn.errors import ConversionError
        from refsnn.nir.writer import check_exportable

        try:
            check_exportable(net)
        except ConversionError as e:
            return f"not expressible in NIR: {e}"
        if self.framework:
            from refsnn.nir.frameworks import FRAMEWORKS
            if FRAMEWORKS[self.framework].version() == "not installed":
                return f"{FRAMEWORKS[self.framework].name} (or torch) not installed"
        return None

    def graph(self, net):
        from refsnn.conformance.adapters import as_float32
        from refsnn.nir.writer import to_nir

        return to_nir(as_float32(net))

    def run(self, net, x, steps):
        from refsnn.nir.frameworks import run_framework

        run = run_framework(self.framework, self.graph(net), np.asarray(x, np.float32),
                            steps, dt=1.0)
        return run.spikes


class NirRefsnnAdapter(NirAdapter):
    """refsnn's own simulation of the exported NIR graph (float32)."""

    def run(self, net, x, steps):
        from refsnn.nir.reader import from_nir
        from refsnn.sim.simulator import Simulator

        back = from_nir(self.graph(net), dtype=np.float32)
        names = back.neuron_nodes()
        return Simulator(back).run(np.asarray(x, np.float32), [steps], rasters=names).rasters


class NirSnntorchAdapter(NirAdapter):
    framework = "snntorch"


class NirNorseAdapter(NirAdapter):
    framework = "norse"


class NirSinabsAdapter(NirAdapter):
    framework = "sinabs"


class NirRockpoolAdapter(NirAdapter):
    framework = "rockpool"
