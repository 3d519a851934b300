"""File helpers shared by every writer and reader: atomic, signed HDF5 output and safe,
verified HDF5 opening (checksums: :mod:`refsnn.checksum`)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from refsnn import checksum
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
    (:func:`atomic_path`: an interrupted run leaves ``path`` as it was), signed with the
    checksums of everything written (:func:`refsnn.checksum.sign`).

    Yields
    ------
    h5py.File
        The open temporary file.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f
            checksum.sign(f)
            f.flush()


#: What a damaged HDF5 file makes h5py raise part-way through a read.
H5_ERRORS = (OSError, RuntimeError, KeyError, MemoryError)


def unreadable(path, e: BaseException) -> ModelFormatError:
    """The one error for a file h5py cannot read (truncated, damaged metadata, ...)."""
    first = (str(e).splitlines() or [type(e).__name__])[0]
    return ModelFormatError(str(path), "/", "file", "a readable HDF5 file",
                            f"unreadable ({first})")


def read_dataset(group, key: str, file: str, path: str):
    """The values of dataset ``group[key]``, refusing a group in its place and a dataset
    whose declared values are not stored (:func:`refsnn.checksum.check_storage`).

    Parameters
    ----------
    group : h5py.Group
    key : str
    file, path : str
        For the error: the file and the dataset's HDF5 path.
    """
    d = group[key]
    if not isinstance(d, h5py.Dataset):
        raise ModelFormatError(file, path, "kind", "a dataset", "a group")
    if d.shape is None:
        raise ModelFormatError(file, path, "shape", "an array", "an empty (null) dataspace")
    checksum.check_storage(d, file)
    try:
        return d[()]
    except H5_ERRORS as e:
        raise ModelFormatError(file, path, "values", "readable values",
                               f"unreadable ({(str(e).splitlines() or [type(e).__name__])[0]})"
                               ) from None


class CheckedFile(h5py.File):
    """An :class:`h5py.File` opened by :func:`open_h5`: leaving its ``with`` block without an
    exception verifies the file's checksums (:func:`refsnn.checksum.verify`).

    Verifying at the end, after the reader has validated the structure, means a file edited
    by hand into an invalid one gets the reader's error naming the field, and a file whose
    valid-looking values changed gets the checksum error naming the dataset. When the reader
    refused a signed file whose checksums do not match either, its error says so too (naming
    the object that changed): the file is damaged, not merely written wrongly.
    """

    verify_on_exit = True

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.verify_on_exit:
                try:
                    checksum.verify(self, self.refsnn_name)
                except H5_ERRORS as e:
                    raise unreadable(self.refsnn_name, e) from None
            elif isinstance(exc, ModelFormatError) and self.verify_on_exit \
                    and exc.field != checksum.ATTR:
                note = self._mismatch()
                if note:
                    raise ModelFormatError(exc.file, exc.path, exc.field, exc.expected,
                                           f"{exc.found}; {note}") from None
        finally:
            super().__exit__(exc_type, exc, tb)

    def _mismatch(self) -> str:
        """``"the checksums do not match at <path> (...)"`` if the file is signed and damaged,
        else ``""``."""
        try:
            if not checksum.is_signed(self):
                return ""
            checksum.verify(self, self.refsnn_name)
        except ModelFormatError as e:
            return f"the checksums do not match at {e.path} ({e.field} changed after writing)"
        except H5_ERRORS:
            return ""
        return ""


def open_h5(path, kind: str = "file", verify: bool = True):
    """Open ``path`` read-only, turning every failure into a :class:`ModelFormatError`.

    Use it as a context manager: with ``verify`` (the default), a block that ends without an
    exception then checks the file's checksums, raising a :class:`ModelFormatError` naming the
    dataset whose content changed; a file without checksums passes (it is *unverified*).
    """
    p = Path(path)
    if not p.exists():
        raise ModelFormatError(str(path), "/", "file", f"an existing {kind}", "no such file")
    if p.is_dir():
        raise ModelFormatError(str(path), "/", "file", f"a {kind}", "a directory")
    try:
        f = CheckedFile(p, "r")
    except H5_ERRORS as e:
        raise unreadable(path, e) from None
    try:
        _check_metadata(f, str(path))
    except ModelFormatError:
        f.close()
        raise
    except H5_ERRORS as e:
        f.close()
        raise unreadable(path, e) from None
    f.refsnn_name = str(path)
    f.verify_on_exit = verify
    return f


def read_h5(path, kind: str, read, verify: bool = True):
    """``read(f, file)`` of ``path`` opened by :func:`open_h5` (``file``: ``str(path)``), an
    h5py failure part-way through (a damaged file) as the one :func:`unreadable` error."""
    file = str(path)
    with open_h5(path, kind, verify) as f:
        try:
            return read(f, file)
        except H5_ERRORS as e:  # damaged file: h5py fails mid-read
            raise unreadable(file, e) from None


def _check_metadata(f: h5py.File, file: str) -> None:
    """Refuse damaged metadata before a reader sees it: a member or attribute name that is
    not UTF-8 (h5py gives it as ``bytes``: :func:`refsnn.checksum.utf8_name`) and a datatype
    h5py cannot map to NumPy (a TypeError or ValueError on its ``dtype``), on which every
    reader's handling would otherwise fail."""
    def visit(name, obj):
        path = "/" + checksum.utf8_name(name, file, "/", "member name")
        try:
            for a in obj.attrs:
                obj.attrs.get_id(checksum.utf8_name(a, file, path, "attribute name")).dtype
            if isinstance(obj, h5py.Dataset):
                obj.dtype
        except (TypeError, ValueError) as e:
            raise ModelFormatError(file, path, "datatype", "a datatype NumPy can hold",
                                   f"unreadable ({(str(e).splitlines() or [''])[0]})") from None
    visit("", f)
    try:
        f.visititems(visit)
    except UnicodeDecodeError as e:  # h5py decodes some paths itself, failing on a bad name
        raise ModelFormatError(file, "/", "member name", "UTF-8 names",
                               f"unreadable ({e})") from None


def verify_file(path) -> str:
    """Check the checksums of ``path`` without loading it as anything.

    Returns
    -------
    str
        ``"verified"`` or ``"unverified"`` (no checksums, e.g. a Keras file).

    Raises
    ------
    ModelFormatError
        If the file cannot be read or its content differs from its checksums.
    """
    return read_h5(path, "file", checksum.verify, verify=False)


def sign_file(path) -> None:
    """(Re)write the checksums of an existing file in place, e.g. after a deliberate edit in a
    test; refsnn's writers sign their files themselves."""
    with h5py.File(path, "r+") as f:
        checksum.sign(f)


def checksum_status(path) -> str:
    """``"verified (N objects: ...)"`` or ``"unverified (...)"`` for a file refsnn reads (what
    ``refsnn inspect`` prints); raises the ModelFormatError of a mismatch."""
    import zipfile

    if zipfile.is_zipfile(path):
        return "unverified (a .keras archive carries no refsnn checksums)"
    if verify_file(path) == checksum.UNVERIFIED:
        return "unverified (the file carries no checksums)"
    with h5py.File(path, "r") as f:
        n = len(f.attrs[checksum.ATTR])
    return f"verified ({n} objects: every dataset's values and every attribute)"


def attr_str(value):
    """An HDF5 string attribute as str (h5py may return bytes); other values as they are."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def attr_names(value, error):
    """A string or 1-D string array attribute as a list of str; anything else (a number, a
    2-D array, ...) raises ``error(found)``."""
    if isinstance(value, (str, bytes)):
        return [attr_str(value)]
    arr = np.asarray(value)
    if arr.ndim != 1 or not all(isinstance(v, (str, bytes)) for v in arr.tolist()):
        raise error(f"{arr.dtype} of shape {arr.shape}")
    return [attr_str(v) for v in arr.tolist()]


def check_header(f: h5py.File, file: str, fmt: str, version: int) -> int:
    """Check the root's ``format`` and ``format_version`` (1 to ``version``: version 1 is the
    same layout without checksums); return the version."""
    found = attr_str(f.attrs.get("format", None))
    if not isinstance(found, str) or found != fmt:
        raise ModelFormatError(file, "/", "format", repr(fmt), repr(found))
    v = f.attrs.get("format_version", None)
    a = np.asarray(v) if v is not None else None
    if a is None or a.ndim != 0 or a.dtype.kind not in "iu" or not 1 <= int(a) <= version:
        supported = " or ".join(str(i) for i in range(1, version + 1))
        raise ModelFormatError(file, "/", "format_version", f"{supported} (supported)", repr(v))
    return int(a)
