"""Without the nir package: the core imports no nir, and the NIR commands refuse in one line
with the install command (simulated by hiding the package)."""

from __future__ import annotations

import subprocess
import sys

import h5py

from conftest import ROOT
from refsnn.cli.main import main


def test_core_and_nir_modules_do_not_import_nir_or_torch():
    code = ("import sys, refsnn.cli.main, refsnn.sim.simulator, refsnn.nir.writer, "
            "refsnn.nir.reader, refsnn.nir.frameworks, refsnn.oracle.compare, "
            "refsnn.nir.adapters; "
            "print(sorted(m for m in ('nir', 'torch', 'nirtorch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"


def test_nir_commands_without_nir_say_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # "import nir" now raises ImportError
    fake = tmp_path / "g.nir"
    with h5py.File(fake, "w") as f:  # NIR's layout: /version and /node
        f.create_dataset("version", data="1.0.8")
        f.create_group("node")
    for argv in (["inspect", str(fake)],
                 ["export-nir", str(ROOT / "data" / "golden" / "mlp_if_reset_zero.net.h5"),
                  "-o", str(tmp_path / "x.nir")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code != 0 and "pip install 'refsnn[nir]'" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.nir").exists()
