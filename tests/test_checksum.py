"""Checksums: every file refsnn writes is signed, every reader verifies, any changed byte of a
weight is found and named; unsigned files load as "unverified"; re-saving keeps the content."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refsnn import checksum
from refsnn.cli.main import main
from refsnn.data import load_data
from refsnn.errors import ModelFormatError
from refsnn.io import sign_file, verify_file
from refsnn.model import load_refsnn_h5, save_model
from refsnn.oracle.trace import read_trace
from refsnn.resave import resave
from refsnn.sim.network import load_snn

from conftest import small_cnn

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
SHIPPED = sorted([DATA / "digits.h5", *(DATA / "models").glob("*.h5"),
                  *(DATA / "golden").glob("*.h5")])
CNN = DATA / "models" / "cnn.h5"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_file_is_verified(path):
    assert verify_file(path) == checksum.VERIFIED
    with h5py.File(path) as f:
        assert int(f.attrs["format_version"]) == 2


def _weight_storage(path, name):
    """(file offset, storage size) of the contiguous dataset ``name``."""
    with h5py.File(path) as f:
        d = f[name]
        assert d.chunks is None and d.compression is None
        return d.id.get_offset(), d.id.get_storage_size()


WEIGHTS = ["nodes/conv1/weight", "nodes/conv2/weight", "nodes/fc/weight", "nodes/bn1/var"]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(which=st.sampled_from(WEIGHTS), where=st.floats(0, 1, exclude_max=True),
       xor=st.integers(1, 255))
def test_any_flipped_byte_of_a_weight_is_found(tmp_path_factory, which, where, xor):
    """A byte changed anywhere in a weight dataset's stored bytes of the shipped CNN is a
    one-line ModelFormatError naming the file and the dataset, from load_refsnn_h5 and from
    ``refsnn inspect --verify``."""
    path = tmp_path_factory.mktemp("flip") / "cnn.h5"
    shutil.copy(CNN, path)
    offset, size = _weight_storage(path, which)
    at = offset + int(where * size)
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ xor]))
    with pytest.raises(ModelFormatError) as info:
        load_refsnn_h5(path)
    message = str(info.value)
    if info.value.path == "/" + which:  # a valid-looking value: the checksum error
        assert info.value.field == "data" and message.startswith(f"{path}: /{which}: data: ")
    else:  # an invalid value (e.g. a negative variance): the reader's error, and the checksum's
        assert message.startswith(f"{path}: /{which.rsplit('/', 1)[0]}: ") and \
            message.endswith(f"the checksums do not match at /{which} (data changed after "
                             "writing)"), message
    assert "\n" not in message
    with pytest.raises(ModelFormatError, match=f"/{which}: data"):
        verify_file(path)


def test_every_writer_signs(tmp_path, cnn, inputs):
    from refsnn.conversion import convert_if
    from refsnn.oracle.trace import record_trace, write_trace
    from refsnn.sim.network import save_snn
    from refsnn.sim.record import save_run
    from refsnn.sim.simulator import Simulator

    net = convert_if(cnn, inputs)
    save_model(cnn, tmp_path / "m.h5")
    save_snn(net, tmp_path / "n.h5")
    sim = Simulator(net)
    write_trace(tmp_path / "t.h5", record_trace(sim, inputs, 5))
    save_run(tmp_path / "r.h5", sim.run(inputs, [5]), {"steps": 5})
    for name in ("m.h5", "n.h5", "t.h5", "r.h5"):
        assert verify_file(tmp_path / name) == checksum.VERIFIED, name
    load_refsnn_h5(tmp_path / "m.h5"), load_snn(tmp_path / "n.h5"), read_trace(tmp_path / "t.h5")


@pytest.mark.parametrize("edit, where, field", [
    (lambda f: f["nodes/conv/weight"].__setitem__((0, 0, 0, 0), 0.5), "/nodes/conv/weight",
     "data"),
    (lambda f: f["nodes/relu"].attrs.__setitem__("op", "identity"), "/nodes/relu", "attributes"),
    (lambda f: f["nodes/bn"].attrs.__setitem__("eps", 1e-3), "/nodes/bn", "attributes"),
    (lambda f: f.attrs.__setitem__("format_version", 1), "/", "attributes"),
    (lambda f: f["nodes/conv"].attrs.__setitem__("note", "x"), "/nodes/conv", "attributes"),
])
def test_valid_looking_edits_are_found(tmp_path, edit, where, field):
    """An edit that leaves a valid model (so no structural check can see it) is found."""
    path = tmp_path / "m.h5"
    save_model(small_cnn(residual=True), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    if field == "attributes" and where == "/nodes/conv":  # an unknown attribute: the reader
        with pytest.raises(ModelFormatError, match="note"):  # names it first
            load_refsnn_h5(path)
        with pytest.raises(ModelFormatError, match=f"{where}: {field}: "):
            verify_file(path)
        return
    with pytest.raises(ModelFormatError, match=f"{where}: {field}: expected checksum"):
        load_refsnn_h5(path)


def test_removed_or_added_objects_and_a_damaged_manifest(tmp_path):
    path = tmp_path / "d.h5"
    shutil.copy(DATA / "digits.h5", path)
    with h5py.File(path, "r+") as f:
        f["test"].create_dataset("extra", data=np.zeros(3))
    with pytest.raises(ModelFormatError, match="/test/extra: object: .*added after writing"):
        verify_file(path)
    shutil.copy(DATA / "digits.h5", path)
    with h5py.File(path, "r+") as f:
        entries = list(f.attrs[checksum.ATTR])
        f.attrs[checksum.ATTR] = np.asarray(entries[:-1] + ["nonsense"],
                                            dtype=h5py.string_dtype())
    with pytest.raises(ModelFormatError, match=f"/: {checksum.ATTR}: .*'nonsense'"):
        load_data(path, "test")
    shutil.copy(DATA / "digits.h5", path)
    with h5py.File(path, "r+") as f:
        del f.attrs[checksum.ATTR]
    with pytest.raises(ModelFormatError, match=f"/: {checksum.ATTR}: expected checksums"):
        load_data(path, "test")


def test_unsigned_version_1_files_load_unverified(tmp_path, capsys):
    path = tmp_path / "m.h5"
    save_model(small_cnn(), path)
    with h5py.File(path, "r+") as f:
        del f.attrs[checksum.ATTR]
        f.attrs["format_version"] = 1
    load_refsnn_h5(path)
    assert verify_file(path) == checksum.UNVERIFIED
    assert main(["inspect", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "checksums unverified (the file carries no checksums)"
    assert main(["inspect", "--verify", str(path)]) == 0
    assert "unverified" in capsys.readouterr().out
    sign_file(path)  # a version-1 file may carry checksums too: then they are verified
    assert verify_file(path) == checksum.VERIFIED


def test_inspect_verify_exit_codes(tmp_path, capsys):
    assert main(["inspect", "--verify", str(DATA / "golden" / "mlp_if.trace.h5")]) == 0
    assert "checksums verified (9 objects" in capsys.readouterr().out
    path = tmp_path / "d.h5"
    shutil.copy(DATA / "digits.h5", path)
    with h5py.File(path, "r+") as f:
        f["train/y"][0] = (f["train/y"][0] + 1) % 10
    assert main(["inspect", "--verify", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"refsnn: error: {path}: /train/y: data: expected checksum")
    assert err.count("\n") == 1


def test_resave_keeps_the_content(tmp_path):
    """An unsigned version-1 file re-saved: same datasets, attributes and order, version 2,
    verified; a second re-save changes nothing; a corrupt signed file is refused."""
    from conftest import assert_same_h5

    old, path = tmp_path / "old.h5", tmp_path / "m.h5"
    shutil.copy(CNN, old)
    with h5py.File(old, "r+") as f:
        del f.attrs[checksum.ATTR]
        f.attrs["format_version"] = 1
    shutil.copy(old, path)
    assert resave(path) == "signed"
    assert verify_file(path) == checksum.VERIFIED
    with h5py.File(path, "r+") as f:
        assert int(f.attrs["format_version"]) == 2
        f.attrs["format_version"] = 1
        del f.attrs[checksum.ATTR]
    assert_same_h5(old, path)
    sign_file(path)
    before = path.read_bytes()
    assert resave(path) == "already verified" and path.read_bytes() == before
    with h5py.File(path, "r+") as f:
        f["nodes/fc/bias"][0] += 1
    with pytest.raises(ModelFormatError, match="/nodes/fc/bias: data"):
        resave(path)



@pytest.mark.parametrize("source, name, where, what", [
    ("model", b"format_version", "/", "attribute name"),
    (DATA / "digits.h5", b"train", "/", "member name"),
])
def test_a_corrupted_name_fails_verification(tmp_path, source, name, where, what):
    """A name h5py cannot decode as UTF-8 comes back as bytes; sorting it with the other
    names was a TypeError (issue 30, found by byte fuzzing). Now verification fails with a
    one-line ModelFormatError naming the file and the object, and so do the readers (which
    check the names when they open the file)."""
    path = tmp_path / "f.h5"
    if source == "model":
        save_model(small_cnn(residual=True), path)
        read = load_refsnn_h5
    else:
        shutil.copy(source, path)
        read = lambda p: load_data(p, "test")  # noqa: E731
    raw = bytearray(path.read_bytes())
    at = raw.find(name)  # the first: the name itself (the manifest, written last, is later)
    raw[at + 1] = 0xFF  # not UTF-8
    path.write_bytes(bytes(raw))
    start = f"{path}: {where}: {what}: expected a UTF-8 name, found b'"
    with h5py.File(path, "r") as f:
        with pytest.raises(ModelFormatError) as info:
            checksum.verify(f, str(path))
    assert str(info.value).startswith(start) and "\n" not in str(info.value), str(info.value)
    for reader in (verify_file, read):
        with pytest.raises(ModelFormatError) as info:
            reader(path)
        assert str(info.value).startswith(start) and "\n" not in str(info.value)
