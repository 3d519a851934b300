"""What every diagnostic shares: the :class:`Probe` it reads, the :class:`Table` it returns, and
the registry :data:`DIAGNOSTICS` it is added to with :func:`register` (see
:mod:`refsnn.diagnose`, which imports every diagnostic module so that each registers itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from refsnn.sim.network import SpikingNetwork, ann_limit
from refsnn.sim.simulator import Run, Simulator


@dataclass(frozen=True)
class Table:
    """One diagnostic's result: a table with one row per layer (or per item).

    Attributes
    ----------
    title : str
        What the table shows, one line.
    columns : tuple of str
        Column names; every row has a value for each.
    rows : list of dict
        ``{column: value}``; values are str, int, float or None (shown as ``-``).
    notes : tuple of str
        Lines printed under the table (definitions, caveats).
    """

    title: str
    columns: tuple[str, ...]
    rows: list[dict]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": self.rows,
                "notes": list(self.notes)}

    def format(self) -> str:
        """The table as aligned text."""
        def cell(v):
            return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

        cells = [list(self.columns)] + [[cell(r[c]) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title]
        lines += ["  " + "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                  for row in cells]
        lines += [f"  {note}" for note in self.notes]
        return "\n".join(lines)


@dataclass
class Probe:
    """One batch simulated for ``steps`` steps, and the network's ANN limit on it.

    Attributes
    ----------
    net : SpikingNetwork
    x : ndarray, shape (B, *input_shape)
    steps : int
        The run length ``T``.
    seed : int
        Poisson encoder seed (0 for deterministic encoders).
    backend : str
        Simulator backend.
    run : Run
        The simulation (counts of every neuron node, readout at ``T``).
    limit : dict of str to ndarray, shape (B, *node_shape)
        Every node's value in the ANN limit (:func:`refsnn.sim.network.ann_limit`), and
        ``"input"``.
    """

    net: SpikingNetwork
    x: np.ndarray
    steps: int
    seed: int = 0
    backend: str = "numba"
    run: Run = field(init=False)
    limit: dict = field(init=False)

    def __post_init__(self):
        self.run = self.simulate()
        _, self.limit = ann_limit(self.net, self.x, all_nodes=True)

    def simulate(self, rasters: Sequence[str] = (), potentials: Sequence[str] = ()) -> Run:
        """Simulate the batch again, recording the rasters and potentials of the nodes named."""
        return Simulator(self.net, self.backend).run(self.x, self.steps, seed=self.seed,
                                                     rasters=rasters, potentials=potentials)

    def trace(self, node: str) -> Run:
        """A run with the rasters and membrane potentials of one neuron node recorded."""
        return self.simulate(rasters=[node], potentials=[node])


@dataclass(frozen=True)
class Diagnostic:
    """A registered diagnostic: its function and the methods it applies to."""

    name: str
    function: Callable[[Probe], Table]
    methods: tuple[str, ...]
    help: str


#: name -> Diagnostic; filled by the diagnostic modules (imported by :mod:`refsnn.diagnose`).
DIAGNOSTICS: dict[str, Diagnostic] = {}


def register(name: str, methods: Sequence[str], help: str):
    """Decorator: add a diagnostic function to :data:`DIAGNOSTICS`."""
    def wrap(function):
        DIAGNOSTICS[name] = Diagnostic(name, function, tuple(methods), help)
        return function
    return wrap


def applicable(net: SpikingNetwork) -> list[str]:
    """Names of the diagnostics that apply to ``net``'s method, in registration order."""
    return [d.name for d in DIAGNOSTICS.values() if net.method in d.methods]


def diagnose(probe: Probe, names: Sequence[str]) -> dict[str, Table]:
    """Run the named diagnostics on one probe."""
    return {name: DIAGNOSTICS[name].function(probe) for name in names}

