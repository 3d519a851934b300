"""Execute every derivation notebook in ``proofs/``; a cell that raises fails its test.

The notebooks check their claims against refsnn with ``assert``, so a notebook that runs is a
proof whose numbers agree with the code. Each runs in a fresh ``python3`` kernel of *this*
interpreter (so it sees the same refsnn, NumPy and Numba, and inherits the environment, e.g.
``NUMBA_DISABLE_JIT``), with the notebook's folder as working directory and the repository
root on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No importorskip: the test extra installs these, and a missing one must fail, not skip.
import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import KernelManager

from conftest import needs_jit

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "proofs").glob("*.ipynb"))
KERNEL = "python3"
CELL_TIMEOUT = 300


def _runs_this_interpreter(argv) -> bool:
    """Whether a kernel spec's command starts the interpreter running the tests."""
    if not argv:
        return False
    exe = argv[0]
    major, minor = sys.version_info[:2]
    if exe in {"python", f"python{major}", f"python{major}.{minor}"}:
        return True  # jupyter_client launches these names as sys.executable
    # Compare paths without resolving symlinks: a virtualenv's python is a symlink to the
    # base interpreter but has its own site-packages.
    return os.path.abspath(exe) == os.path.abspath(sys.executable)


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernel spec manager whose ``python3`` runs this interpreter.

    Use the installed ``python3`` spec (ipykernel provides one inside any environment it is
    installed in) if it starts this interpreter; otherwise write a private spec for
    ``sys.executable`` with ipykernel into a temporary folder, without touching the user's or
    the environment's Jupyter folders.
    """
    ksm = KernelSpecManager()
    try:
        if _runs_this_interpreter(ksm.get_kernel_spec(KERNEL).argv):
            return ksm
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import write_kernel_spec

    kernels = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(str(kernels / KERNEL))
    private = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    assert _runs_this_interpreter(private.get_kernel_spec(KERNEL).argv)
    return private


def test_there_are_notebooks():
    assert NOTEBOOKS, "proofs/ holds no notebook"


# The notebooks simulate the shipped networks: hours as plain Python, so not with
# NUMBA_DISABLE_JIT=1 (that run is for the coverage of the kernels, which other tests reach).
@needs_jit
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_specs, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        nb, km=km, kernel_name=KERNEL, timeout=CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()  # raises CellExecutionError, naming the cell, if any cell raises
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.get("execution_count") for c in ran)
