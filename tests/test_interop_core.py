"""The core, the CLI and the readers import neither torch nor keras (no extras needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_and_readers_do_not_import_torch_or_keras():
    code = ("import sys, refsnn.cli.main, refsnn.interop.load, refsnn.export, refsnn.convert; "
            "bad = [m for m in ('torch', 'keras', 'tensorflow', 'spikingjelly') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    env_path = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": env_path, "PATH": ""}, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
