"""Content checksums of refsnn's HDF5 files: sign a file when written, verify it when read.

A signed file carries one root attribute, :data:`ATTR` (``refsnn_checksums``): a 1-D string
array with one entry per object of the file (the root group, every group, every dataset),
``"<path> <attrs digest> <data digest>"``, sorted by path. The digests are SHA-256 of a
canonical encoding (:func:`object_digests`):

- the attributes digest covers the object's attributes (names, dtypes, shapes, values; the
  root's :data:`ATTR` itself excluded) and, for a group, the names of its members;
- the data digest covers a dataset's dtype, shape and values in C order, little-endian
  (``-`` for a group).

The digests depend on what a reader sees, not on the storage layout: a chunked (streamed) and
a contiguous dataset with the same values have the same digest. A changed value, attribute,
dtype or shape, and an added, removed or renamed object, are all found, and the error names
the object. Files without :data:`ATTR` (older refsnn files, Keras files, files written by hand
or by other programs) are *unverified*: they still load, and ``refsnn inspect`` says so.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np

from refsnn.errors import ModelFormatError

#: The root attribute holding the checksum manifest.
ATTR = "refsnn_checksums"
#: Bytes read per hash update: hashing a dataset needs memory for one block (or one row,
#: e.g. one step of a streamed recording, if larger), not for the dataset.
_BLOCK_BYTES = 1 << 18

VERIFIED, UNVERIFIED = "verified", "unverified"


def _update_value(h, value) -> None:
    """Feed one attribute value to ``h`` in a canonical form: shape, dtype, values."""
    if isinstance(value, h5py.Empty):
        h.update(b"empty:" + str(value.dtype).encode())
        return
    if isinstance(value, (str, bytes)):
        value = np.asarray([value], dtype=object).reshape(())
    arr = np.asarray(value)
    h.update(f"{arr.shape}".encode())
    h.update(b"str" if arr.dtype.kind in "OUS" else _dtype_tag(arr.dtype))
    _update_values(h, arr)


def _dtype_tag(dtype) -> bytes:
    dtype = np.dtype(dtype)
    return (dtype.newbyteorder("<") if dtype.kind in "iufc" else dtype).str.encode()


def _update_values(h, arr: np.ndarray) -> None:
    """Feed the values of ``arr`` in C order: strings as length-prefixed UTF-8, numbers as
    little-endian bytes. Blocks of a dataset fed one after another give the same digest as the
    whole (no per-block header), so the digest does not depend on how it is read."""
    if arr.dtype.kind in "OUS":
        for item in arr.reshape(-1).tolist():
            b = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else \
                item if isinstance(item, bytes) else repr(item).encode()
            h.update(len(b).to_bytes(8, "little") + b)
        return
    if arr.dtype.kind in "iufc" and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.size:
        h.update(memoryview(flat.view(np.uint8)))  # the values' bytes, not copied


def utf8_name(name, file: str, path: str, what: str) -> str:
    """``name`` (an attribute or member name as h5py gives it) if it is a ``str``. h5py gives
    ``bytes`` for a name that is not UTF-8, which no refsnn writer writes: a damaged file,
    refused with a :class:`ModelFormatError` naming ``file`` and ``path``."""
    if isinstance(name, str):
        return name
    raise ModelFormatError(file, path, what, "a UTF-8 name", f"{name!r} (a damaged file)")


def _attrs_digest(obj, is_root: bool, file: str) -> str:
    h = hashlib.sha256(b"attrs")
    path = "/" + obj.name.lstrip("/")
    for name in sorted(utf8_name(n, file, path, "attribute name") for n in obj.attrs):
        if is_root and name == ATTR:
            continue
        h.update(len(name).to_bytes(8, "little") + name.encode())
        _update_value(h, obj.attrs[name])
    if isinstance(obj, h5py.Group):
        h.update(b"members")
        for name in sorted(utf8_name(n, file, path, "member name") for n in obj.keys()):
            h.update(len(name).to_bytes(8, "little") + name.encode())
    return h.hexdigest()


def check_storage(d: h5py.Dataset, file: str) -> None:
    """Refuse a dataset whose values are not all in the file: without compression or other
    filters, every value written takes its bytes of storage, so a dataset that declares more
    values than it stores (chunks never written: a damaged file, or one whose shape was
    edited; e.g. 2^40 elements declared in a 1 MB file) would make a reader fill gigabytes
    with HDF5's fill value, or hash them for hours. Raises :class:`ModelFormatError`."""
    if d.shape is None or d.size == 0:
        return
    nbytes = d.size * d.dtype.itemsize
    if d.id.get_create_plist().get_nfilters() == 0:
        stored = d.id.get_storage_size()
        if stored < nbytes and d.dtype.kind not in "OSUV":  # vlen data lives in the heap
            raise ModelFormatError(file, "/" + d.name.lstrip("/"), "storage",
                                   f"{nbytes} bytes of values ({d.dtype} {d.shape})",
                                   f"{stored} bytes stored (values never written: a damaged "
                                   "or edited file)")


def _data_digest(d: h5py.Dataset, file: str) -> str:
    check_storage(d, file)
    h = hashlib.sha256(b"data")
    h.update(b"str" if d.dtype.kind in "OUS" else _dtype_tag(d.dtype))
    if d.shape is None:  # a null dataspace
        h.update(b"null")
        return h.hexdigest()
    h.update(f"{d.shape}".encode())
    if d.ndim == 0 or d.size == 0:
        _update_values(h, np.asarray(d[()]))
        return h.hexdigest()
    row = max(1, d.size // d.shape[0] * max(d.dtype.itemsize, 1))
    step = max(1, _BLOCK_BYTES // row)
    for start in range(0, d.shape[0], step):
        _update_values(h, np.asarray(d[start:start + step]))
    return h.hexdigest()


def object_digests(f: h5py.File, file: str = "") -> dict[str, tuple[str, str]]:
    """Path -> (attributes digest, data digest or ``"-"``) of every object in ``f`` (``file``
    names it in errors)."""
    file = file or f.filename
    out = {"/": (_attrs_digest(f, True, file), "-")}

    def visit(name, obj):
        path = "/" + utf8_name(name, file, "/", "member name")
        data = _data_digest(obj, file) if isinstance(obj, h5py.Dataset) else "-"
        out[path] = (_attrs_digest(obj, False, file), data)
    f.visititems(visit)
    return dict(sorted(out.items()))


def sign(f: h5py.File) -> None:
    """Write (or rewrite) the checksum manifest of the open, writable file ``f``; call it when
    everything else is written (:func:`refsnn.io.atomic_h5` does)."""
    if ATTR in f.attrs:
        del f.attrs[ATTR]
    entries = [f"{p} {a} {d}" for p, (a, d) in object_digests(f).items()]
    f.attrs[ATTR] = np.asarray(entries, dtype=h5py.string_dtype())


def is_signed(f: h5py.File) -> bool:
    """Whether ``f`` carries a checksum manifest (is not merely *unverified*)."""
    return ATTR in f.attrs


def _manifest(f: h5py.File, file: str) -> dict[str, tuple[str, str]]:
    def bad(found):
        return ModelFormatError(file, "/", ATTR, "a checksum manifest (1-D string array of "
                                "'<path> <sha256> <sha256 or ->')", found)
    raw = np.asarray(f.attrs[ATTR])
    if raw.ndim != 1 or raw.dtype.kind not in "OUS":
        raise bad(f"{raw.dtype} of shape {raw.shape}")
    out = {}
    for item in raw.tolist():
        item = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
        parts = item.split(" ") if isinstance(item, str) else []
        if len(parts) != 3 or len(parts[1]) != 64 or parts[0] in out:
            raise bad(f"the entry {item!r}")
        out[parts[0]] = (parts[1], parts[2])
    return out


def verify(f: h5py.File, file: str) -> str:
    """Check every object of ``f`` against its checksum manifest.

    Returns
    -------
    str
        :data:`VERIFIED`, or :data:`UNVERIFIED` for a file without a manifest (whose root
        ``format`` is not a refsnn format of a version that requires one).

    Raises
    ------
    ModelFormatError
        Naming the file and the object whose attributes or data differ from what was written,
        or an object added or removed since.
    """
    if ATTR not in f.attrs:
        _require_unsigned_ok(f, file)
        return UNVERIFIED
    want = _manifest(f, file)
    have = object_digests(f, file)
    for path in sorted(set(want) ^ set(have)):  # first the objects added or removed
        if path not in have:
            raise ModelFormatError(file, path, "object", "present (listed in the checksums)",
                                   "nothing (removed after writing)")
        raise ModelFormatError(file, path, "object", "only objects listed in the checksums",
                               "an object added after writing")
    for path in want:
        (wa, wd), (ha, hd) = want[path], have[path]
        if wd != hd:
            raise ModelFormatError(file, path, "data", f"checksum {wd[:16]}...",
                                   f"{hd[:16]}... (the values changed after writing: the "
                                   "file is corrupt)")
        if wa != ha:
            raise ModelFormatError(file, path, "attributes", f"checksum {wa[:16]}...",
                                   f"{ha[:16]}... (attributes or members changed after "
                                   "writing: the file is corrupt)")
    return VERIFIED


#: refsnn formats -> the first version whose files must carry checksums.
SIGNED_SINCE = {"refsnn-model": 2, "refsnn-snn": 2, "refsnn-data": 2, "refsnn-run": 2,
                "refsnn-trace": 2}


def _require_unsigned_ok(f: h5py.File, file: str) -> None:
    """A refsnn file of a version written with checksums must have them."""
    fmt = f.attrs.get("format")
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    since = SIGNED_SINCE.get(fmt) if isinstance(fmt, str) else None
    version = np.asarray(f.attrs.get("format_version", -1))
    if since is not None and version.ndim == 0 and version.dtype.kind in "iu" \
            and int(version) >= since:
        raise ModelFormatError(file, "/", ATTR, f"checksums (every {fmt} file of version "
                               f">= {since} has them)", "nothing (removed or damaged)")
