"""NIR (the Neuromorphic Intermediate Representation): refsnn's reader and writer of NIR graphs.

``reader``      a NIR graph -> a :class:`~refsnn.sim.network.SpikingNetwork` (``refsnn.load``
                and the command line read ``.nir`` files through it)
``writer``      a converted IF network -> a NIR graph (``refsnn export-nir``)
``cli``         the ``export-nir`` command and the loading of ``.nir`` files
``frameworks``  other frameworks' NIR readers run on the same graph (snnTorch, Norse, Sinabs,
                Rockpool), for the conformance adapters in ``adapters``

The neuron kinds a NIR graph imports into (``nir_if``, ``lif``, ``li``, ...) are registered in
:mod:`refsnn.neurons` like every other kind. Nothing here is imported by the core, and ``nir``
itself only when a NIR graph is read or written.
"""
