"""Export models from other frameworks to refsnn's HDF5 format.

``from_torch`` needs torch (an optional extra) and imports it only when called: importing
``refsnn.export`` never imports torch.
"""

from __future__ import annotations


def from_torch(module, example_input, path):
    """Trace a ``torch.nn.Module`` and write it as a refsnn model; see
    :func:`refsnn.export.torch.from_torch`."""
    from refsnn.export.torch import from_torch as _from_torch

    return _from_torch(module, example_input, path)


__all__ = ["from_torch"]
