"""The conformance suite: refsnn's golden traces and theory properties run against another
implementation.

An implementation is plugged in through an :class:`Adapter`; the pytest plugin
(:mod:`refsnn.conformance.plugin`) runs every golden case of ``data/golden/`` through it and
compares the spikes with ``refsnn compare``'s rules (:mod:`refsnn.oracle.compare`), and runs
the properties of :mod:`refsnn.conformance.properties` through it.
"""

from __future__ import annotations

import importlib

#: Adapter name -> "module:Class"; any other "module:Class" spec is accepted as well.
ADAPTERS = {
    "refsnn": "refsnn.conformance.adapters:RefsnnAdapter",
    "refsnn-float32": "refsnn.conformance.adapters:RefsnnFloat32Adapter",
    "spikingjelly": "refsnn.conformance.adapters:SpikingJellyAdapter",
    # through NIR (refsnn.nir.adapters): export, then a framework's NIR reader
    "nir-refsnn": "refsnn.nir.adapters:NirRefsnnAdapter",
    "nir-snntorch": "refsnn.nir.adapters:NirSnntorchAdapter",
    "nir-norse": "refsnn.nir.adapters:NirNorseAdapter",
    "nir-sinabs": "refsnn.nir.adapters:NirSinabsAdapter",
    "nir-rockpool": "refsnn.nir.adapters:NirRockpoolAdapter",
}


class Adapter:
    """What a backend implements to be checked.

    Attributes
    ----------
    rtol : float
        Relative margin at the threshold within which a mismatch is a benign rounding tie
        (raise it, e.g. to 1e-4, for a float32 backend, as ``refsnn-float32`` does).

    Only :meth:`run` is required; :meth:`run_encoded` (recorded per-step input, for the
    Poisson case and the BSNN property) and :meth:`unsupported` are optional.
    """

    rtol = 1e-5

    def unsupported(self, net) -> str | None:
        """A reason the backend cannot run ``net`` (a converted SpikingNetwork), or None."""
        return None

    def run(self, net, x, steps: int) -> dict:
        """Simulate ``net`` on ``x`` (B, *input_shape) for ``steps`` steps.

        Returns
        -------
        dict of str to bool ndarray, shape (steps, B, *node_shape)
            The spikes of each neuron node, by refsnn's node name.
        """
        raise NotImplementedError

    def run_encoded(self, net, encoded) -> dict:
        """Simulate ``net`` with the input node's value at step ``t`` given as ``encoded[t-1]``.

        Used for the cases whose encoding is random (Poisson): the trace stores the spikes
        refsnn's encoder drew (``/encoded``), and the backend must feed those instead of
        drawing its own. Optional: an adapter without it skips those cases.

        Parameters
        ----------
        encoded : ndarray, shape (T, B, *input_shape)
            The input of each step (Poisson: -1, 0 or +1 per input element).

        Returns
        -------
        dict of str to bool ndarray, shape (T, B, *node_shape)
            As :meth:`run`.
        """
        raise NotImplementedError


def implements_run_encoded(adapter: Adapter) -> bool:
    """Whether ``adapter`` overrides :meth:`Adapter.run_encoded`."""
    return type(adapter).run_encoded is not Adapter.run_encoded


def load_adapter(spec: str) -> Adapter:
    """The adapter named ``spec`` (a key of :data:`ADAPTERS` or ``module:Class``)."""
    from refsnn.errors import OptionError

    path = ADAPTERS.get(spec, spec)
    if ":" not in path:
        raise OptionError(f"--refsnn-conformance: expected one of {sorted(ADAPTERS)} or "
                          f"module:Class, found {spec!r}")
    module, name = path.split(":", 1)
    return getattr(importlib.import_module(module), name)()
