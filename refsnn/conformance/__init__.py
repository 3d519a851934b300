"""The conformance suite: refsnn's golden traces run against another implementation.

An implementation is plugged in through an :class:`Adapter`; the pytest plugin
(:mod:`refsnn.conformance.plugin`) runs every golden case of ``data/golden/`` through it and
compares the spikes with ``refsnn compare``'s rules (:mod:`refsnn.oracle.compare`).
"""

from __future__ import annotations

import importlib

#: Adapter name -> "module:Class"; any other "module:Class" spec is accepted as well.
ADAPTERS = {
    "refsnn": "refsnn.conformance.adapters:RefsnnAdapter",
    "spikingjelly": "refsnn.conformance.adapters:SpikingJellyAdapter",
}


class Adapter:
    """What a backend implements to be checked.

    Attributes
    ----------
    rtol : float
        Relative margin at the threshold within which a mismatch is a benign rounding tie
        (raise it, e.g. to 1e-4, for a float32 backend).
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


def load_adapter(spec: str) -> Adapter:
    """The adapter named ``spec`` (a key of :data:`ADAPTERS` or ``module:Class``)."""
    from refsnn.errors import OptionError

    path = ADAPTERS.get(spec, spec)
    if ":" not in path:
        raise OptionError(f"--refsnn-conformance: expected one of {sorted(ADAPTERS)} or "
                          f"module:Class, found {spec!r}")
    module, name = path.split(":", 1)
    return getattr(importlib.import_module(module), name)()
