"""Run one ``refsnn evaluate ... --json`` in-process and return its JSON: the one place the
table scripts (bsnn_table.py, l4_table.py, noise_table.py) get their numbers from."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from refsnn.cli.main import main as refsnn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "digits.h5"


def evaluate_json(model: Path, steps: str, extra: list[str]) -> dict:
    """``refsnn evaluate MODEL --data data/digits.h5 --steps STEPS --json EXTRA...``.

    Raises
    ------
    SystemExit
        When refsnn refuses or fails (its one-line error is on stderr).
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = refsnn(["evaluate", str(model), "--data", str(DATA), "--steps", steps, "--json",
                       *extra])
    if code != 0:
        raise SystemExit(f"refsnn evaluate {model} {' '.join(extra)} failed ({code})")
    return json.loads(out.getvalue())
