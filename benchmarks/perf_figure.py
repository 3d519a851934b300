"""The figure of refsnn's float32 speed against the best peer, per workload and CPU family.

    python benchmarks/perf_figure.py [--data benchmarks/perf_ratios.json]
                                     [-o docs/img/perf_ratios.png]

Reads the stored results (``benchmarks/perf_ratios.json``: each run's CPU, date, command and
where its numbers were taken from) and draws one horizontal bar per (workload, T, batch) and
CPU: ``best peer ms / refsnn ms`` on a log axis, so a bar right of 1 is refsnn faster. Nothing
is measured here and nothing is random; the PNG carries no date, so the same data give the
same file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ("tab:red", "tab:blue", "tab:green")


def ratios(data: dict) -> tuple[list[tuple], dict]:
    """The rows in the first run's order (others' extra rows after) and, per CPU family, the
    ratio ``peer_ms / refsnn_f32_ms`` by row key ``(workload, T, batch)``."""
    keys, per_family = [], {}
    for run in data["runs"]:
        r = per_family.setdefault(f"{run['family']} ({run['date']})", {})
        for row in run["rows"]:
            key = (row["workload"], row["T"], row["batch"])
            if key not in keys:
                keys.append(key)
            r[key] = row["peer_ms"] / row["refsnn_f32_ms"]
    return keys, per_family


def draw(data: dict, out: Path) -> None:
    keys, per_family = ratios(data)
    height = 0.8 / len(per_family)
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(keys) + 1.4), dpi=100)
    y = np.arange(len(keys))[::-1]
    for k, (family, r) in enumerate(per_family.items()):
        pos = [y[i] + 0.4 - height * (k + 0.5) for i, key in enumerate(keys) if key in r]
        val = [r[key] for key in keys if key in r]
        ax.barh(pos, [v - 1 for v in val], height, left=1, color=COLOURS[k % len(COLOURS)],
                label=family)
        for p, v in zip(pos, val):
            ax.text(v * (1.04 if v >= 1 else 0.96), p, f"{v:.2f}", va="center", fontsize=7,
                    ha="left" if v >= 1 else "right")
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlim(0.4, 8)
    ax.set_xticks([0.5, 1, 2, 4])
    ax.set_xticklabels(["0.5", "1", "2", "4"])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y)
    ax.set_yticklabels([f"{w}, T={t}, batch {b}" for w, t, b in keys], fontsize=8)
    ax.set_xlabel("best peer's time / refsnn float32 time (right of 1: refsnn faster)")
    ax.set_title("refsnn float32 vs the best peer at any precision (IF)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Software": None})
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT / "benchmarks" / "perf_ratios.json"))
    p.add_argument("-o", "--output", default=str(ROOT / "docs" / "img" / "perf_ratios.png"))
    args = p.parse_args(argv)
    draw(json.loads(Path(args.data).read_text()), Path(args.output))


if __name__ == "__main__":
    main()
