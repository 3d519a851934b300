"""Let a module be called as its main function (``refsnn.convert(...)``, ``refsnn.evaluate(...)``).

The flat API names a function after the module that holds it. Rebinding the package attribute
to the function would hide the module from ``import refsnn.convert as m`` and from
``mock.patch("refsnn.convert.x")``; giving the module a ``__call__`` keeps both working.
"""

from __future__ import annotations

import inspect
import sys
import types


def make_callable(module_name: str, func) -> None:
    """Make the module ``module_name`` callable: calling it calls ``func``.

    Parameters
    ----------
    module_name : str
        A module already in ``sys.modules`` (call this at the end of its own body).
    func : callable
        What a call runs; its signature is shown for the module (``inspect.signature``).
    """

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return func(*args, **kwargs)

    module = sys.modules[module_name]
    module.__class__ = CallableModule
    module.__signature__ = inspect.signature(func)
