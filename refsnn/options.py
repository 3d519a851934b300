"""The conversion options: one table, one validation, shared by the command line and the API.

Each option is a keyword of one or more converters in :data:`refsnn.conversion.METHODS`; its
default is the converter's own (:func:`refsnn.conversion.defaults`).
An option given to a method that does not take it is refused, never ignored, whether it came
as a command-line flag or as a keyword of :func:`refsnn.conversion.convert`. The values themselves
are checked by the converters, so both paths share that check too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from refsnn.errors import OptionError


@dataclass(frozen=True)
class Option:
    """One conversion option.

    Attributes
    ----------
    key : str
        The converters' keyword (also argparse's ``dest``).
    flag : str
        The command-line flag.
    methods : tuple of str
        The methods that take it.
    cli : dict
        argparse keywords of the flag (type, choices, action, help).
    """

    key: str
    flag: str
    methods: tuple[str, ...]
    cli: dict = field(default_factory=dict)


#: The conversion methods: the one list of their names.
ALL = ("if", "signgd", "bsnn", "noise")
#: Methods whose thresholds come from the model: calibration data is refused, not ignored.
NO_CALIBRATION = ("noise",)

OPTIONS = (
    Option("percentile", "--percentile", ("if", "bsnn"), dict(
        type=float, help="IF, BSNN: threshold = this percentile of each ReLU's calibration "
                         "activations, 100 = max (default 99.9)")),
    Option("per_channel", "--per-channel", ("if", "bsnn"), dict(
        action="store_const", const=True,
        help="IF, BSNN: one threshold per channel, not per layer")),
    Option("reset", "--reset", ("if",), dict(
        choices=("subtract", "zero"), help="IF: reset by subtraction (default) or to zero")),
    Option("v_init", "--v-init", ("if", "bsnn"), dict(
        choices=("zero", "half"), help="IF: initial membrane potential 0 (default) or theta/2; "
                                       "BSNN: theta/2 (default) or 0")),
    Option("period", "--period", ("bsnn",), dict(
        type=int, help="BSNN: steps of one integrate or fire cycle (default 4)")),
    Option("sync", "--no-sync", ("bsnn",), dict(
        action="store_const", const=False,
        help="BSNN: no synchronous neurons on residual shortcuts (to see what they do)")),
    Option("readout", "--readout", ("if",), dict(
        choices=("potential", "count"), help="IF: mean output potential (default) or spike "
                                             "count of added output neurons")),
    Option("adjust", "--adjust", ("if",), dict(
        choices=("none", "l4"), help="IF with --encoding poisson: l4 lowers each neuron's bias "
                                     "by the excess its input spread adds (derived in refsnn, "
                                     "not the paper's formula; see README)")),
    Option("adjust_steps", "--adjust-steps", ("if",), dict(
        type=int, help="IF, --adjust l4: the reference horizon T_ref (default 32)")),
    Option("eta0", "--eta0", ("signgd",), dict(
        type=float, help="signGD: first step size (default 0.15)")),
    Option("gamma", "--gamma", ("signgd",), dict(
        type=float, help="signGD: step-size decay per step (default 0.95)")),
    Option("scale", "--scale", ("signgd",), dict(
        choices=("element", "channel", "layer"),
        help="signGD: granularity of the calibrated output scales (default element)")),
    Option("scale_floor", "--scale-floor", ("signgd",), dict(
        type=float, help="signGD: no scale below this fraction of its layer's largest "
                         "(default 0.1, 0 with --compat; 0 turns the floor off)")),
    Option("compat", "--compat", ("signgd",), dict(
        action="store_const", const=True,
        help="signGD: reproduce the reference code's conventions (see README)")),
    Option("encoding", "--encoding", ALL, dict(
        choices=("analog", "poisson", "exact", "gd"),
        help="IF, BSNN, noise: analog current (default) or poisson rate coding; signGD: exact "
             "(default) or gd (the reference code's encoder; the only one with --compat)")),
    Option("dtype", "--dtype", ALL, dict(
        choices=("float64", "float32"), help="precision of the simulation (default float64)")),
)
BY_KEY = {o.key: o for o in OPTIONS}


def resolve(method: str, given: dict, flags: bool = False) -> dict:
    """Check ``given`` options against ``method``; return the converter's keywords.

    Parameters
    ----------
    method : str
        A key of :data:`refsnn.conversion.METHODS`.
    given : dict of str to object
        Option keyword -> value; ``None`` means not given.
    flags : bool
        Name options and the method as on the command line (``--percentile``, ``--method
        noise``) in messages, instead of as keywords.

    Returns
    -------
    dict
        The given options only (the converter supplies its defaults for the rest); ``dtype``
        as a NumPy scalar type.

    Raises
    ------
    OptionError
        For an unknown method, an unknown option, or an option the method does not take.
    """
    if method not in ALL:
        raise OptionError(f"{'--method' if flags else 'method'}: expected one of "
                          f"{', '.join(ALL)}, found {method!r}")
    unknown = sorted(k for k in given if k not in BY_KEY)
    if unknown:
        raise OptionError(f"unknown conversion option {unknown[0]!r}; options: "
                          f"{', '.join(BY_KEY)}")
    kwargs = {}
    for key, value in given.items():
        if value is None:
            continue
        option = BY_KEY[key]
        if method not in option.methods:
            name = option.flag if flags else f"option {key!r}"
            where = f"--method {method}" if flags else f"method {method!r}"
            raise OptionError(f"{name} does not apply to {where} (it applies to "
                              f"{', '.join(option.methods)})")
        kwargs[key] = value
    if "dtype" in kwargs:
        kwargs["dtype"] = _dtype(kwargs["dtype"], "--dtype" if flags else "dtype")
    return kwargs


def check_calibration(method: str, given: bool, flag: str = "calibration") -> None:
    """Refuse calibration data for a method that takes none; require it for the others."""
    if method in NO_CALIBRATION and given:
        raise OptionError(f"{flag} does not apply to {_method(method, flag)}: its thresholds "
                          f"come from the model, not from calibration data")
    if method not in NO_CALIBRATION and not given:
        raise OptionError(f"{flag} is required for {_method(method, flag)}")


def _method(method: str, flag: str) -> str:
    return f"--method {method}" if flag.startswith("--") else f"method {method!r}"


def _dtype(value, name: str):
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise OptionError(f"{name}: expected float64 or float32, found {value!r}") from None
    if dtype not in (np.float64, np.float32):
        raise OptionError(f"{name}: expected float64 or float32, found {dtype.name}")
    return dtype.type
