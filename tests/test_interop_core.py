"""The core, the CLI and the readers import neither torch, keras nor onnx (no extras needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_and_readers_do_not_import_torch_or_keras():
    code = ("import sys, refsnn.cli.main, refsnn.files, refsnn.export, refsnn.conversion, "
            "refsnn.interop.onnx; "
            "bad = [m for m in ('torch', 'keras', 'tensorflow', 'spikingjelly', 'onnx', "
            "'onnxruntime') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    env_path = str(ROOT)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": env_path, "PATH": ""}, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_onnx_file_without_the_onnx_package(tmp_path):
    """Without onnx, an .onnx model ends in one line saying which extra to install."""
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    code = ("import sys; sys.modules['onnx'] = None; from refsnn.cli.main import main; "
            f"sys.exit(main(['inspect', {str(tmp_path / 'm.onnx')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""}, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ("refsnn: error: reading ONNX files needs the onnx package: "
                           "pip install 'refsnn[onnx]'\n")
