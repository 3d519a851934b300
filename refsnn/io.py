"""File helpers shared by every writer: atomic HDF5 output and safe HDF5 opening."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py

from refsnn.errors import ModelFormatError


@contextlib.contextmanager
def atomic_path(path):
    """A temporary file name beside ``path``, renamed over ``path`` when complete.

    The caller writes the temporary file inside the ``with`` block; when the block ends
    without an exception the file is synced to disk and renamed over ``path``. An interrupted
    run (an exception, Ctrl-C, a killed process) leaves ``path`` as it was and no partial file
    under that name.

    Yields
    ------
    str
        The temporary file's path (the file exists, empty, with normal permissions).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it normal permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_h5(path):
    """Open a new HDF5 file for writing that appears at ``path`` only when complete
    (:func:`atomic_path`: an interrupted run leaves ``path`` as it was).

    Yields
    ------
    h5py.File
        The open temporary file.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f
            f.flush()


def open_h5(path, kind: str = "file"):
    """Open ``path`` read-only, turning every failure into a :class:`ModelFormatError`."""
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(str(path), "/", "file", f"an existing {kind}", "no such file")
    if p.is_dir():
        raise ModelFormatError(str(path), "/", "file", f"a {kind}", "a directory")
    try:
        return h5py.File(p, "r")
    except OSError as e:
        raise ModelFormatError(str(path), "/", "file", "a readable HDF5 file",
                               f"unreadable ({str(e).splitlines()[0]})") from None
