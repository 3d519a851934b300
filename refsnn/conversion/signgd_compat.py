"""``--compat``: what the reference code (snuhcs/snn_signgd) builds differently from refsnn.

Its max pooling, and the nonlinearities it has no neuron for (refused under ``--compat``).

refsnn's own signGD max pooling is a balanced tree over the window positions
(:func:`refsnn.conversion.signgd._max_tree`). The reference code builds it differently, and the
transient of a max neuron depends on which estimates it compares, so ``--compat`` rebuilds it
the reference's way (checked number for number against the reference code's outputs in
``data/golden/compat``):

1. the input is padded with ``PAD_VALUE`` (-200) on every side;
2. *rows first*: a chain over the kernel rows ``r = 0 .. kh-1``. Row window ``r`` holds the
   padded input at rows ``y*sh + r`` and **every** padded column; neuron ``row1`` tracks
   ``max(row window 0, row window 1)``, neuron ``row{r}`` tracks ``max(row{r-1}, row window
   r)``. Neurons on the padded columns compare two padded values: their target is -200, far
   beyond the reach ``eta0/(1-gamma)``, so their estimates fall every step; they exist in
   the reference code too and feed step 3;
3. *then columns*: the same chain over the kernel columns ``c = 0 .. kw-1`` of the last row
   neuron's estimates (no padding), column window ``c`` holding columns ``x*sw + c``.

Every max neuron uses the reference's strict tie rule and scale 1 (``--compat`` scales ReLU
neurons only). The padding lives in the neurons' initial input estimates (``x_init``), as
every constant of a signGD network does; the windows then carry increments only.
"""

from __future__ import annotations

from typing import Callable

from refsnn.errors import ConversionError

#: The reference code's padding value for max pooling (it pads the input with this constant).
PAD_VALUE = -200.0

#: Nonlinearities refsnn converts but the reference code has no neuron for: it leaves them in
#: the converted network as they are, applied to the spike signals, so its outputs do not
#: approach the ANN's (measured on an MLP: SiLU, tanh and ReLU6 errors grow from T = 8 to 64)
#: and there are no numbers to reproduce. ``--compat`` refuses them.
NO_REFERENCE_NEURON = ("silu", "sigmoid", "tanh", "hardtanh", "multiply")


def check_compat_ops(graph) -> None:
    """Refuse, naming the node, an operator the reference code cannot convert."""
    for node in graph.nodes:
        if node.op in NO_REFERENCE_NEURON:
            raise ConversionError(
                f"node '{node.name}': op '{node.op}' cannot be converted with --compat: the "
                f"reference code (snuhcs/snn_signgd) has no neuron for it, so there is nothing "
                f"to reproduce; convert without --compat")


def _window(name: str, source: str, kernel, stride, padding, offset, pad_value) -> dict:
    return {"name": name, "op": "window", "inputs": [source],
            "attrs": {"kernel": kernel, "stride": stride, "padding": padding,
                      "offset": offset, "pad_value": pad_value if any(padding) else 0.0},
            "params": {}}


def _chain(prefix: str, windows: list[dict], last: str, neuron: Callable) -> list[dict]:
    """``max(w0, w1)``, then ``max(that, w2)``, ...: neurons named ``{prefix}{i}`` (``i >= 1``),
    the last one ``last``; a single window (kernel 1 along this axis) is renamed ``last``."""
    if len(windows) == 1:
        windows[0]["name"] = last
        return windows
    nodes, acc = list(windows), windows[0]["name"]
    for i, w in enumerate(windows[1:], start=1):
        name = last if i == len(windows) - 1 else f"{prefix}{i}"
        nodes.append(neuron(name, [acc, w["name"]], "max"))
        acc = name
    return nodes


def compat_max_pool(node, neuron: Callable) -> list[dict]:
    """The reference code's max pooling for the ``maxpool2d`` node ``node``.

    Parameters
    ----------
    node : Node
        The pooling node (``attrs``: ``kernel``, ``stride``, ``padding`` pairs).
    neuron : callable
        ``neuron(name, inputs, fn)`` -> an ``sgd`` node dict with the compat tie rule.

    Returns
    -------
    list of dict
        Window synapses and max neurons; the last keeps ``node``'s name, so consumers need no
        rewiring. Row stage output: (C, Ho, W + 2*pw); final output: (C, Ho, Wo).
    """
    n, a = node.name, node.attrs
    if a.get("ceil_mode"):
        raise ConversionError(f"node '{n}': maxpool2d with ceil_mode=True cannot be converted "
                              f"with --compat: the reference code pools with floor sizes only; "
                              f"convert without --compat")
    (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
    rows = [_window(f"{n}.rows{r}", node.inputs[0], (kh, 1), (sh, 1), (ph, pw), (r, 0),
                    PAD_VALUE) for r in range(kh)]
    row_out = f"{n}.row{kh - 1}" if kh > 1 else f"{n}.rows0"
    nodes = _chain(f"{n}.row", rows, row_out, neuron)
    cols = [_window(f"{n}.cols{c}", row_out, (1, kw), (1, sw), (0, 0), (0, c), 0.0)
            for c in range(kw)]
    return nodes + _chain(f"{n}.col", cols, n, neuron)
