"""``refsnn evaluate -o RUN.h5 --resume``: a run killed (SIGKILL) part-way continues from its
last completed batch and writes the file an uninterrupted run writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from refsnn.cli.main import build_parser, main
from refsnn.resume import checkpoint_for
from refsnn.sim.record import read_run

from conftest import assert_same_h5

ROOT = Path(__file__).resolve().parents[1]
CNN = str(ROOT / "data" / "models" / "cnn.h5")
DATA = str(ROOT / "data" / "digits.h5")
# 18 samples in 6 batches of 3, Poisson input (a random stream per sample) and a raster:
# the NumPy backend makes each batch last long enough to be killed in the middle of the run
COMMAND = ["evaluate", CNN, "--data", DATA, "--limit", "18", "--batch-size", "3",
           "--steps", "4,12", "--encoding", "poisson", "--seed", "5", "--backend", "numpy",
           "--record-rasters", "relu1"]
BATCHES = 6


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "refsnn.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def _batches(folder: Path) -> int:
    return len([p for p in folder.glob("*.h5")]) if folder.is_dir() else 0


def _kill_after(out: Path, batches: int, extra: float, command=COMMAND) -> int:
    """Start the resumable run, SIGKILL it once ``batches`` batches are kept (plus ``extra``
    seconds, to land inside a batch); returns the batches kept when it died."""
    folder = out.parent / f".{out.name}.resume"
    proc = _cli(*command, "-o", str(out), "--resume")
    try:
        deadline = time.monotonic() + 300
        while _batches(folder) < batches and proc.poll() is None:
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        time.sleep(extra)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return _batches(folder)


def test_killed_runs_resume_to_the_uninterrupted_file(tmp_path):
    """Killed three times at seeded random points (after 1 to 5 of the 6 batches, plus a
    random fraction of a batch), resumed each time; the last resume completes. The file has
    the datasets, values and attributes of an uninterrupted run (the same bytes, too), and
    no checkpoint or temporary file is left."""
    whole = tmp_path / "whole.h5"
    assert main([*COMMAND, "-o", str(whole)]) == 0
    rng = np.random.default_rng(22)
    out = tmp_path / "run.h5"
    kept = []
    for target in sorted(rng.integers(1, BATCHES, 3)):
        kept.append(_kill_after(out, int(target), float(rng.uniform(0, 0.3))))
    assert not out.exists()
    assert kept == sorted(kept) and 0 < kept[0] and kept[-1] < BATCHES, kept
    proc = _cli(*COMMAND, "-o", str(out), "--resume")
    assert proc.wait() == 0, proc.stderr.read().decode()
    # the last run started after the batches kept (at least those counted when killed)
    err = proc.stderr.read().decode()
    done = int(err.split("resuming after ")[1].split()[0])
    assert done >= 3 * kept[-1] and "warning" not in err.lower(), err
    assert_same_h5(whole, out)
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5", "whole.h5"]
    run, attrs = read_run(out)
    assert run.rasters["relu1"].shape == (12, 18, 16, 8, 8) and attrs["seed"] == 5


def test_resume_of_another_command_is_refused(tmp_path, capsys):
    """Batches kept by one command are not mixed into another's run."""
    out = tmp_path / "run.h5"
    short = [a if a != "4,12" else "4,8" for a in COMMAND]
    # a checkpoint left by the first command: made as evaluate makes it, one batch
    assert main([*COMMAND, "-o", str(out), "--resume", "--limit", "3"]) == 0
    assert not (tmp_path / ".run.h5.resume").exists()  # removed once the output is written
    args = build_parser().parse_args([*COMMAND, "-o", str(out), "--resume"])
    checkpoint_for(args).save(0, 3, read_run(out)[0])
    assert main([*short, "-o", str(out), "--resume"]) == 2
    assert "holds the batches of a different command" in capsys.readouterr().err
    assert main([*COMMAND, "-o", str(out), "--resume", "--stream"]) == 2
    assert "--resume works with an in-memory local run" in capsys.readouterr().err


def test_resume_with_another_batch_size_gives_the_same_file(tmp_path, capsys):
    """The checkpoint is by samples: a run resumed with another --batch-size (which does not
    change results) continues after the samples done."""
    whole, out = tmp_path / "whole.h5", tmp_path / "run.h5"
    assert main([*COMMAND, "-o", str(whole)]) == 0
    part = tmp_path / "part.h5"  # samples 0..6 of the same command, as batch runs
    assert main([*COMMAND, "-o", str(part), "--limit", "6"]) == 0
    args = build_parser().parse_args([*COMMAND, "-o", str(out), "--resume"])
    run = read_run(part)[0]
    checkpoint_for(args).save(0, 6, run)
    assert main([*COMMAND, "-o", str(out), "--resume", "--batch-size", "5"]) == 0
    assert "resuming after 6 of 18 samples" in capsys.readouterr().err
    assert_same_h5(whole, out)
    assert not (tmp_path / ".run.h5.resume").exists()
    os.unlink(part)


# 96 steps: a batch takes long enough that the 5 ms poll sees it kept (at 12 steps an idle
# machine finished all five batches between two polls)
TRACE = ["trace", CNN, "--data", DATA, "--limit", "5", "--batch-size", "1", "--steps", "96",
         "--encoding", "poisson", "--seed", "3", "--backend", "numpy"]


def test_killed_traces_resume_to_the_uninterrupted_file(tmp_path):
    """``refsnn trace --resume`` killed at two seeded points (after 1 to 4 of the 5 one-sample
    batches) and resumed: the trace of one uninterrupted, unbatched run, byte for byte."""
    whole = tmp_path / "whole.h5"
    assert main([*[a for a in TRACE if a not in ("--batch-size", "1")], "-o", str(whole)]) == 0
    rng = np.random.default_rng(7)
    out = tmp_path / "trace.h5"
    kept = [_kill_after(out, int(t), float(rng.uniform(0, 0.2)), TRACE)
            for t in sorted(rng.integers(1, 5, 2))]
    assert not out.exists() and 0 < kept[0] and kept[-1] < 5, kept
    proc = _cli(*TRACE, "-o", str(out), "--resume")
    assert proc.wait() == 0
    err = proc.stderr.read().decode()
    assert int(err.split("resuming after ")[1].split()[0]) >= kept[-1], err
    assert_same_h5(whole, out)
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.h5", "whole.h5"]
