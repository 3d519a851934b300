"""The command line: the main job works, output is stable, and mistakes end in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from refsnn.cli.main import main

from conftest import DATA, MODELS, ROOT, needs_jit

CNN = str(MODELS / "cnn.h5")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect(capsys):
    code, out, _ = run_cli(capsys, "inspect", CNN)
    assert code == 0
    assert "conv1" in out and "(16, 8, 8)" in out and "output fc (10,)" in out


@needs_jit
def test_main_job_cnn_is_within_one_point_of_the_ann(capsys):
    """The README's first command: the shipped CNN at T = 128 is within 1 point of its ANN."""
    code, out, _ = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--json")
    assert code == 0
    result = json.loads(out)
    assert [r["steps"] for r in result["results"]] == [8, 16, 32, 64, 128]
    at128 = result["results"][-1]["accuracy"]
    assert result["ann_accuracy"] > 0.95
    assert abs(at128 - result["ann_accuracy"]) <= 0.01


@pytest.mark.parametrize("model", ["mlp", "cnn_maxpool", "resnet"])
def test_other_models_evaluate(capsys, model):
    code, out, _ = run_cli(capsys, "evaluate", MODELS / f"{model}.h5", "--data", DATA,
                           "--limit", "40", "--steps", "4,32", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["samples"] == 40 and len(result["results"]) == 2
    assert result["results"][1]["accuracy"] >= result["ann_accuracy"] - 0.1


def test_run_file_is_byte_stable(capsys, tmp_path):
    """Same command -> same bytes, whatever the batch size and thread count."""
    common = ["evaluate", CNN, "--data", DATA, "--limit", "30", "--steps", "5,20",
              "--encoding", "poisson", "--seed", "7", "--record-rasters", "relu1"]
    assert run_cli(capsys, *common, "-o", tmp_path / "a.h5")[0] == 0
    assert run_cli(capsys, *common, "-o", tmp_path / "b.h5", "--batch-size", "7",
                   "--threads", "1")[0] == 0
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5") as f:
        assert f.attrs["format"] == "refsnn-run"
        assert f["counts/relu1"].shape == (30, 16, 8, 8)
        assert f["rasters/relu1"].shape == (20, 30, 16, 8, 8)
        assert np.array_equal(f["rasters/relu1"][()].sum(axis=0), f["counts/relu1"][()])
        assert sorted(f["readout"]) == ["T20", "T5"]


def test_convert_then_evaluate(capsys, tmp_path):
    out_file = tmp_path / "snn.h5"
    code, out, _ = run_cli(capsys, "convert", CNN, "--calibration", DATA, "--per-channel",
                           "-o", out_file)
    assert code == 0 and out_file.exists()
    code, out, _ = run_cli(capsys, "inspect", out_file)
    assert "converted network: method if" in out and "per_channel: 1" in out
    direct = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--limit", "20", "--steps", "16",
                     "--per-channel", "--json")[1]
    saved = run_cli(capsys, "evaluate", out_file, "--data", DATA, "--limit", "20", "--steps",
                    "16", "--json")[1]
    # same SNN, so same accuracy; the errors differ because a converted file's reference is
    # its ANN limit (IF nodes as clip(x, 0, theta)), not the source ANN
    pick = lambda out: [(r["steps"], r["accuracy"]) for r in json.loads(out)["results"]]
    assert pick(direct) == pick(saved)
    code, _, err = run_cli(capsys, "evaluate", out_file, "--data", DATA, "--percentile", "99")
    assert code == 2
    assert err == (f"refsnn: error: {out_file} is already converted; --percentile would be "
                   f"ignored: drop them or pass the source model\n")


def _one_line_error(err: str, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("refsnn: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_missing_model_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "none.h5", "--data", DATA)
    assert code == 1
    _one_line_error(err, f"{tmp_path / 'none.h5'}: /: file: expected an existing", "no such file")


def test_malformed_model(capsys, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(open(CNN, "rb").read())
    with h5py.File(bad, "r+") as f:
        f["nodes/conv1"].attrs["op"] = "conv3d"
    code, _, err = run_cli(capsys, "inspect", bad)
    assert code == 1
    _one_line_error(err, "/nodes/conv1: op: expected one of", "found 'conv3d'")


def test_bad_options(capsys):
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--seed", "3")
    assert code == 2
    _one_line_error(err, "--seed applies to --encoding poisson only")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--percentile", "120")
    assert code == 2
    _one_line_error(err, "--percentile: expected a number in (0, 100], found 120")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--threads", "999")
    assert code == 2
    _one_line_error(err, "--threads: at most")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--record-rasters", "fc")
    assert code == 2
    _one_line_error(err, "'fc' is not a neuron node")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--split", "validation")
    assert code == 1
    _one_line_error(err, "/validation: group: expected a split, one of ['test', 'train']")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "-o", "/no/such/dir/x.h5",
                           "--limit", "2", "--steps", "2")
    assert code == 1
    _one_line_error(err, "/no/such/dir")


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", CNN, "--data", str(DATA), "--steps", "8,x"])
    assert info.value.code == 2
    assert "expected comma-separated integers" in capsys.readouterr().err


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "refsnn.cli.main", "inspect", "/nonexistent.h5"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == ("refsnn: error: /nonexistent.h5: /: file: expected an existing model "
                           "or network file, found no such file\n")


def test_signgd_evaluate(capsys):
    code, out, _ = run_cli(capsys, "evaluate", MODELS / "mlp.h5", "--data", DATA, "--method",
                           "signgd", "--limit", "30", "--steps", "16,128", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "signgd" and result["encoding"] == "exact"
    assert result["saturated"] == {}
    errors = [r["max_abs_error"] for r in result["results"]]
    assert errors[1] < errors[0] / 20
    assert result["results"][1]["accuracy"] == pytest.approx(result["ann_accuracy"], abs=0.034)


def test_options_of_the_other_method_are_refused(capsys):
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--method", "signgd",
                           "--readout", "count")
    assert code == 2
    _one_line_error(err, "--readout does not apply to --method signgd")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--gamma", "0.9")
    assert code == 2
    _one_line_error(err, "--gamma does not apply to --method if")
    code, _, err = run_cli(capsys, "evaluate", CNN, "--data", DATA, "--encoding", "exact")
    assert code == 2
    _one_line_error(err, "--encoding: expected one of analog, poisson, found 'exact'")


def test_if_refuses_a_gelu_model_and_points_to_signgd(capsys, tmp_path):
    from refsnn.model import make_graph, save_model
    rng = np.random.default_rng(0)
    path = tmp_path / "gelu.h5"
    save_model(make_graph((1, 8, 8), [
        dict(name="flat", op="flatten", inputs=["input"]),
        dict(name="fc1", op="linear", inputs=["flat"],
             params=dict(weight=rng.normal(0, 0.1, (16, 64)), bias=np.zeros(16))),
        dict(name="act", op="gelu", inputs=["fc1"]),
        dict(name="fc", op="linear", inputs=["act"],
             params=dict(weight=rng.normal(0, 0.3, (10, 16)), bias=np.zeros(10))),
    ], "fc"), path)
    code, _, err = run_cli(capsys, "evaluate", path, "--data", DATA, "--limit", "5")
    assert code == 1
    _one_line_error(err, "node 'act': op 'gelu' cannot be converted with --method if",
                    "use --method signgd")
    code, out, _ = run_cli(capsys, "evaluate", path, "--data", DATA, "--limit", "5", "--method",
                           "signgd", "--steps", "200", "--json")
    assert code == 0 and json.loads(out)["results"][0]["max_abs_error"] < 1e-3


def test_signgd_network_file_scores_against_its_ann_limit(capsys, tmp_path):
    """A converted signGD file carries its constants in x_init / readout_init; its ANN limit
    is the source ANN, so both routes report the same ANN accuracy and a small error."""
    out_file = tmp_path / "sg.h5"
    assert run_cli(capsys, "convert", MODELS / "mlp.h5", "--method", "signgd", "--calibration",
                   DATA, "-o", out_file)[0] == 0
    direct = json.loads(run_cli(capsys, "evaluate", MODELS / "mlp.h5", "--data", DATA,
                                "--method", "signgd", "--limit", "20", "--steps", "150",
                                "--json")[1])
    saved = json.loads(run_cli(capsys, "evaluate", out_file, "--data", DATA, "--limit", "20",
                               "--steps", "150", "--json")[1])
    assert saved["ann_accuracy"] == direct["ann_accuracy"]
    assert saved["results"][0]["accuracy"] == direct["results"][0]["accuracy"]
    assert abs(saved["results"][0]["max_abs_error"] - direct["results"][0]["max_abs_error"]) \
        < 1e-9


def test_a_closed_pipe_is_not_an_error():
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m refsnn.cli.main inspect {MODELS / 'resnet.h5'} | head -1",
        shell=True, capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.startswith("input (1, 8, 8)")
    assert proc.stderr == ""
