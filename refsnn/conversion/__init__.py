"""Conversion methods: ANN graph -> :class:`~refsnn.sim.network.SpikingNetwork`.

:func:`convert` is ``refsnn.convert(graph, method=..., calibration=..., **options)``.
"""

import inspect

from refsnn.conversion.bsnn import convert_bsnn
from refsnn.conversion.if_ import convert_if
from refsnn.conversion.noise import convert_noise
from refsnn.conversion.signgd import convert_signgd
from refsnn.errors import OptionError
from refsnn.options import ALL, OPTIONS, check_calibration, resolve

#: Method name (:data:`refsnn.options.ALL`, the one list of names) -> converter. Every converter
#: takes ``(graph, calibration, **options)``; tests/test_api.py checks each one's keywords
#: against the options its name takes.
METHODS = dict(zip(ALL, (convert_if, convert_signgd, convert_bsnn, convert_noise)))


def defaults(method: str) -> dict:
    """The options ``method`` takes, with its converter's defaults (read from its signature,
    so there is no second copy to drift).

    Returns
    -------
    dict of str to object
    """
    params = inspect.signature(METHODS[method]).parameters
    return {o.key: params[o.key].default for o in OPTIONS if method in o.methods}


def takes_progress(method: str) -> bool:
    """Whether ``method``'s converter reports calibration progress (a ``progress`` keyword)."""
    return "progress" in inspect.signature(METHODS[method]).parameters


def convert(graph, method: str = "if", calibration=None, progress=None, **options):
    """Convert an ANN into a spiking network with one of :data:`METHODS`.

    The same options, defaults and checks as ``refsnn convert`` (:mod:`refsnn.options`): an
    option the method does not take is refused, not ignored.

    Parameters
    ----------
    graph : Graph
        The trained ANN (:func:`refsnn.load_model`).
    method : {"if", "signgd", "bsnn", "noise"}
    calibration : ndarray, shape (N, *graph.input_shape)
        Inputs whose ANN activations set the thresholds or scales; required by every method
        but ``noise``, whose thresholds are the model's (it is refused there).
    progress : callable, optional
        ``progress(pass_index, samples_done, samples_total)`` while calibrating, for the
        methods that stream their calibration (:func:`takes_progress`); refused by the others.
    **options
        The method's options, named as the converters' keywords (the command-line flags
        with ``_`` for ``-``): e.g. ``percentile=99.9``, ``per_channel=True``,
        ``reset="zero"`` for IF; ``eta0``, ``gamma``, ``scale``, ``compat`` for signGD;
        ``dtype="float32"`` for all.

    Returns
    -------
    SpikingNetwork

    Raises
    ------
    OptionError
        An unknown method or option, an option the method does not take, missing or
        refused calibration data, a bad value.
    ConversionError
        An operator the method cannot convert.

    Examples
    --------
    >>> import refsnn
    >>> graph = refsnn.load_model("data/models/mlp.h5")
    >>> xc, _ = refsnn.load_data("data/digits.h5", "train", graph.input_shape, limit=200)
    >>> net = refsnn.convert(graph, method="if", calibration=xc, percentile=99.9)
    >>> net.method, net.encoding
    ('if', 'analog')
    >>> refsnn.convert(graph, method="signgd", calibration=xc, percentile=99.9)
    Traceback (most recent call last):
    ...
    refsnn.errors.OptionError: option 'percentile' does not apply to method 'signgd' (it applies to if, bsnn)
    """
    kwargs = resolve(method, options)
    check_calibration(method, calibration is not None)
    if progress is not None:
        if not takes_progress(method):
            raise OptionError(f"progress: method {method!r} does not report calibration "
                              f"progress (methods that do: "
                              f"{', '.join(m for m in METHODS if takes_progress(m))})")
        kwargs["progress"] = progress
    return METHODS[method](graph, calibration, **kwargs)


__all__ = ["METHODS", "convert", "convert_bsnn", "convert_if", "convert_noise",
           "convert_signgd", "defaults", "takes_progress"]
