"""NIR (the Neuromorphic Intermediate Representation): refsnn's reader and writer of NIR graphs.

``reader``      a NIR graph -> a :class:`~refsnn.sim.network.SpikingNetwork` (``refsnn.load``
                and the command line read ``.nir`` files through it)
``writer``      a converted IF network -> a NIR graph (``refsnn export-nir``)
``frameworks``  other frameworks' NIR readers run on the same graph (snnTorch, Norse, Sinabs,
                Rockpool), for the conformance adapters in ``adapters``

The neuron kinds a NIR graph imports into (``nir_if``, ``lif``, ``li``, ...) are registered in
:mod:`refsnn.neurons` like every other kind. Nothing here is imported by the core, and ``nir``
itself only when a NIR graph is read or written (:func:`require_nir` first, for the install
line).
"""

from refsnn.errors import OptionError


def require_nir():
    """Import ``nir`` or refuse with the install line."""
    try:
        import nir
    except ImportError:
        raise OptionError("NIR files need the nir package: pip install 'refsnn[nir]'") from None
    return nir
