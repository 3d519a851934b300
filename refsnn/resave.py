"""Re-save refsnn files with checksums, content unchanged: ``python -m refsnn.resave FILES...``.

Each file is copied object by object (h5py's ``copy``: datasets with their dtype, shape,
layout, values and attributes; groups with their members in order) into a new file that
replaces it atomically and is signed (:func:`refsnn.checksum.sign`). The one change: a refsnn
file of a version before checksums gets the first version that has them
(:data:`refsnn.checksum.SIGNED_SINCE`, e.g. ``format_version`` 1 -> 2). The copy is checked
against the original (every object's digest except the root's, and the root's attributes but
``format_version``) before it replaces it. A file already verified is left alone; a file whose
checksums do not match is refused (re-signing would bless the corruption).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from refsnn import checksum
from refsnn.errors import ModelFormatError, RefsnnError
from refsnn.io import atomic_h5, attr_str, read_h5, verify_file


def resave(path) -> str:
    """Re-save ``path`` with checksums; returns ``"already verified"`` or ``"signed"``.

    Raises
    ------
    ModelFormatError
        If the file cannot be read, its checksums do not match, or the copy differs.
    """
    if verify_file(path) == checksum.VERIFIED:
        return "already verified"
    return read_h5(path, "file", _resave, verify=False)


def _resave(src, file: str) -> str:
    want = checksum.object_digests(src)
    root = {k: src.attrs[k] for k in src.attrs}
    fmt = attr_str(root.get("format"))
    since = checksum.SIGNED_SINCE.get(fmt) if isinstance(fmt, str) else None
    version = np.asarray(root.get("format_version", -1))
    if since is not None and version.dtype.kind in "iu" and int(version) < since:
        root["format_version"] = np.asarray(since, dtype=version.dtype)
    with atomic_h5(file) as dst:
        for key, value in root.items():
            dst.attrs[key] = value
        for name in src:
            src.copy(src[name], dst, name=name)
        have = checksum.object_digests(dst)
        del want["/"], have["/"]
        if want != have:
            bad = next(p for p in sorted(set(want) | set(have))
                       if want.get(p) != have.get(p))
            raise ModelFormatError(file, bad, "copy", "the same content",
                                   "a different one (file left unchanged)")
        for key, value in root.items():
            if key != "format_version" and not np.array_equal(
                    np.asarray(dst.attrs[key], dtype=object),
                    np.asarray(value, dtype=object)):
                raise ModelFormatError(file, "/", key, "the same value",
                                       "a different one (file left unchanged)")
    return "signed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refsnn.resave", description=__doc__
                                     .splitlines()[0])
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    code = 0
    for path in args.files:
        try:
            print(f"{path}: {resave(path)}")
        except RefsnnError as e:
            print(f"refsnn.resave: error: {e}", file=sys.stderr)
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
