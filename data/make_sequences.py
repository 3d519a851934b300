"""Make the small sequence examples in data/ (seeded; run from the repository root):

* ``taxel_events.npz``: 24 random event streams of 12 taxels (x in 0..11, y = 0, one
  polarities, times in microseconds) with labels 0..3, as ``refsnn data from-events`` reads
  them (arrays ``events_0`` .. ``events_23`` and ``labels``);
* ``taxels.nir``: a random feed-forward NIR graph of the Braille graphs' input size, 12 ->
  Affine -> LIF(16) -> Affine -> LIF(4), ``dt`` = 1 ms in its metadata.

No data set is involved: the spikes and weights are random (they show the format and the
commands, not a task). Needs ``nir`` (pip install 'refsnn[nir]').

    python data/make_sequences.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 28
TAXELS, HIDDEN, CLASSES, STREAMS = 12, 16, 4, 24
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def event_streams(rng) -> dict:
    """``events_<i>`` and ``labels``: each stream 20..80 events over 0..50 ms."""
    out = {}
    for i in range(STREAMS):
        n = int(rng.integers(20, 81))
        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = np.sort(rng.integers(0, 50_000, n))
        ev["x"] = rng.integers(0, TAXELS, n)
        ev["p"] = 1  # one polarity (sensor size P = 1: every event counts as polarity 0)
        out[f"events_{i}"] = ev
    out["labels"] = np.arange(STREAMS, dtype=np.int64) % CLASSES
    return out


def graph(rng):
    import nir

    w1 = rng.normal(0.0, 1.5, (HIDDEN, TAXELS))
    w2 = rng.normal(0.0, 1.0, (CLASSES, HIDDEN))
    lif = lambda n: nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n),
                            v_threshold=np.ones(n), v_reset=np.zeros(n))
    nodes = {"input": nir.Input(input_type={"input": np.array([TAXELS])}),
             "fc1": nir.Affine(weight=w1, bias=np.zeros(HIDDEN)), "lif1": lif(HIDDEN),
             "fc2": nir.Affine(weight=w2, bias=np.zeros(CLASSES)), "lif2": lif(CLASSES),
             "output": nir.Output(output_type={"output": np.array([CLASSES])})}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])),
                        metadata={"dt": 0.001, "producer": "data/make_sequences.py"})


def main() -> None:
    import nir

    rng = np.random.default_rng(SEED)
    np.savez_compressed(HERE / "taxel_events.npz", **event_streams(rng))
    nir.write(HERE / "taxels.nir", graph(rng))
    print("wrote data/taxel_events.npz and data/taxels.nir")


if __name__ == "__main__":
    main()
