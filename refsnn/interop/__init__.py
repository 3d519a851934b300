"""Interoperability with other frameworks.

Nothing here is imported by the core: :mod:`refsnn.interop.spikingjelly` needs torch and
SpikingJelly (the ``interop`` extra) and is imported only by whoever uses it.
"""
