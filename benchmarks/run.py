"""Benchmark refsnn's simulator against dense per-step peers, in one run, and report ratios.

    python benchmarks/run.py [--quick] [--out benchmarks/results/latest.md]

See ``benchmarks/README.md`` for what is measured and how to read the results. This is a
benchmark, not a test: it asserts nothing about speed, and reports (rather than asserts) how
closely each peer reproduces refsnn's output.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="T=32 only and fewer samples (about 2 minutes on 2 cores)")
    p.add_argument("--out", default="benchmarks/results/latest.md",
                   help="Markdown report to write (default: %(default)s)")
    p.add_argument("--threads", type=int, default=2,
                   help="threads of the parallel contenders (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repeats per measurement; the median is reported")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each timed pass, wait up to SECONDS for other processes to "
                        "leave the cores idle (for shared machines; default: do not wait)")
    p.add_argument("--omp-wait-policy", choices=("default", "passive", "active"),
                   default="default",
                   help="set OMP_WAIT_POLICY for the OpenMP pools (Numba's omp layer, "
                        "PyTorch); 'default' leaves the environment alone. 'passive' keeps "
                        "idle threads from spinning: much faster under competing load, slower "
                        "on idle cores")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the PyTorch peers even if torch is installed")
    p.add_argument("--workloads", default="digits-mlp,digits-cnn,rand-mlp,rand-vgg",
                   help="comma-separated subset of the workloads")
    return p.parse_args(argv)


ARGS = _parse()
# Thread counts are fixed before NumPy / Numba / PyTorch load. OMP_NUM_THREADS sizes the
# OpenMP pools (Numba's omp threading layer, PyTorch's intra-op pool); OPENBLAS_* is left
# alone, so NumPy's BLAS keeps its own default (one thread per core).
os.environ["NUMBA_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
if ARGS.omp_wait_policy != "default":
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy.upper()

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmark the working tree's refsnn

import datetime  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import refsnn  # noqa: E402
import refsnn.synapses.conv as _conv_mod  # noqa: E402
import refsnn.synapses.linear as _linear_mod  # noqa: E402
from refsnn.sim.simulator import Simulator  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402
import workloads as wl  # noqa: E402

TORCH_NOTE = ""
torch = None
if ARGS.no_torch:
    TORCH_NOTE = "torch peers skipped (--no-torch)"
else:
    try:
        import torch  # noqa: E402
        torch.set_num_threads(ARGS.threads)
    except ImportError:
        torch = None
        TORCH_NOTE = "torch is not installed: torch peers skipped"

ORACLE = "refsnn numpy (oracle)"
# Skip the 1-thread refsnn row when one of its passes would take longer than this (estimated
# from its warm-up): it keeps --quick near 2 minutes and the full run under 10.
SKIP_1T_S = 3.0 if ARGS.quick else 30.0
NOISY = 0.10
MIN_LOAD_S = 0.5  # shorter timings take the others' load of their whole row group  # others' share of the cores above which a row is flagged
REFSNN = f"refsnn numba {ARGS.threads}t"
REFSNN_1T = "refsnn numba 1t"


_T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- machine limits

def machine_limits(repeats: int) -> dict:
    """GEMM GFLOP/s (2048x2048, NumPy's BLAS) and copy bandwidth (np.copyto, 256 MiB)."""
    out = {}
    rng = np.random.default_rng(0)
    n = 2048
    for dt in (np.float64, np.float32):
        a = rng.random((n, n)).astype(dt)
        b = rng.random((n, n)).astype(dt)
        a @ b
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            ts.append(time.perf_counter() - t0)
        out[np.dtype(dt).name] = 2 * n ** 3 / min(ts) / 1e9
    src = np.ones(32 * 1024 * 1024)  # 256 MiB
    dst = np.empty_like(src)
    np.copyto(dst, src)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    out["copy"] = 2 * src.nbytes / min(ts) / 1e9  # read + write
    return out


# --------------------------------------------------------------------------- contenders

class Contender:
    """A named way to simulate a workload: ``run(x, T) -> (readout, counts)``."""

    def __init__(self, name, run, is_peer, precision, note=""):
        self.name = name
        self.run = run
        self.is_peer = is_peer
        self.precision = precision
        self.note = note


def refsnn_contender(name, sim, threads):
    def run(x, steps):
        numba.set_num_threads(threads)
        r = sim.run(x, steps)
        return r.readout[steps], r.counts
    return Contender(name, run, False, "float64")


def contenders_for(work, sims):
    out = [refsnn_contender(REFSNN, sims["numba"], ARGS.threads)]
    if ARGS.threads != 1:
        out.append(refsnn_contender(REFSNN_1T, sims["numba"], 1))
    if work.oracle:
        c = refsnn_contender(ORACLE, sims["numpy"], ARGS.threads)
        c.note = "oracle"
        out.append(c)
    for dt in ("float64", "float32"):
        d = peers.DenseNumpy(work.net, dt)
        out.append(Contender(f"numpy dense {dt[-2:]}", d.run, True, dt))
    if torch is not None:
        for dt in ("float32", "float64"):
            d = peers.DenseTorch(work.net, torch, dt)
            out.append(Contender(f"torch dense {dt[-2:]}", d.run, True, dt))
    return out


# --------------------------------------------------------------------------- measuring

class OtherLoad:
    """CPU time other processes used while we measured, as a fraction of all cores.

    From the machine-wide busy time in ``/proc/stat`` minus this process's CPU time; 0 when
    ``/proc/stat`` is unreadable. Clock-tick granularity (10 ms): rough on short intervals.
    """

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK")
        self.ncpu = os.cpu_count() or 1

    def _busy(self):
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return (sum(v[:8]) - v[3] - v[4]) / self.hz  # all but idle and iowait

    def start(self):
        self.t0, self.b0, self.p0 = time.perf_counter(), self._busy(), _cpu_self()

    def stop(self):
        b1 = self._busy()
        if b1 is None or self.b0 is None:
            return 0.0
        wall = time.perf_counter() - self.t0
        others = (b1 - self.b0) - (_cpu_self() - self.p0)
        return min(1.0, max(0.0, others / (wall * self.ncpu)))


def _cpu_self():
    t = os.times()
    return t.user + t.system


def one_pass(contender, batches, steps):
    """Time one pass over ``batches``; returns (seconds, others' share, results)."""
    gc.collect()
    load = OtherLoad()
    load.start()
    t0 = time.perf_counter()
    results = [contender.run(xb, steps) for xb in batches]
    dt = time.perf_counter() - t0
    return dt, load.stop(), results


def wait_quiet(limit_s):
    """Wait (at most ``limit_s``) until other processes use under NOISY of the cores."""
    deadline = time.perf_counter() + limit_s
    while time.perf_counter() < deadline:
        load = OtherLoad()
        load.start()
        time.sleep(0.5)
        if load.stop() < NOISY:
            return


def ratio_text(t, best):
    if best is None:
        return "n/a"
    r = t / best
    if abs(r - 1.0) < 0.005:
        return "1.00x (=)"
    return f"{r:.2f}x slower" if r > 1 else f"{1 / r:.2f}x faster"


def run_config(work, sims, conts, steps, batch, repeats):
    """All contenders on one (workload, T, batch); returns the table rows and facts."""
    if batch == 1:
        batches = [work.x[i:i + 1] for i in range(work.n_single)]
        oracle_batches = batches[:max(1, work.n_single // 4)]
    else:
        batches = [work.x[:batch]]
        oracle_batches = None  # the oracle only runs at batch 1
    last = work.net.neuron_nodes()[-1]
    plan = []
    for c in conts:
        if c.name == ORACLE:
            if oracle_batches is not None:
                plan.append((c, oracle_batches))
        else:
            plan.append((c, batches))
    # Warm-up (2 steps on one batch), then the timed passes interleaved round-robin, so
    # that a change of load on the machine hits every contender alike.
    skipped = []
    for c, bs in list(plan):
        t0 = time.perf_counter()
        c.run(bs[0], min(steps, 2))
        estimate = (time.perf_counter() - t0) * len(bs) * steps / min(steps, 2)
        if c.name == REFSNN_1T and estimate > SKIP_1T_S:
            plan.remove((c, bs))
            skipped.append((c.name, estimate))
    passes = {c.name: [] for c, _ in plan}
    config_load = OtherLoad()
    config_load.start()
    for rep in range(repeats):
        wait_quiet(ARGS.wait_quiet)
        log(f"  {work.name} T={steps} batch={batch}: pass {rep + 1}/{repeats}")
        for c, bs in plan:
            passes[c.name].append(one_pass(c, bs, steps))
    config_others = config_load.stop()
    rows = []
    ref = None
    for c, bs in plan:
        times = [p[0] for p in passes[c.name]]
        if sum(times) >= MIN_LOAD_S:
            others = sum(p[0] * p[1] for p in passes[c.name]) / sum(times)
        else:  # too short for clock ticks: the whole row group's value, marked "~"
            others = -config_others
        results = passes[c.name][-1][2]
        readout = np.concatenate([r[0] for r in results])
        counts = {k: np.concatenate([r[1][k] for r in results]) for k in results[0][1]}
        imgs = sum(b.shape[0] for b in bs)
        row = dict(contender=c, times=times, median=statistics.median(times), calls=len(bs),
                   images=imgs, rss=peak_rss_mb(), others=others)
        if ref is None:  # refsnn numba, the reference output
            ref = dict(readout=readout, counts=counts)
            x_all = np.concatenate(bs)
            events = wl.synaptic_events(work.net, counts, x_all, steps)
            dense = wl.dense_macs(work.net.graph, imgs) * steps
            ref.update(events_per_image=events / imgs, dense_per_image=dense / imgs,
                       rates={k: float(v.mean()) / steps for k, v in counts.items()})
        k = readout.shape[0]
        diff = np.abs(readout.astype(np.float64) - ref["readout"][:k])
        row["max_diff"] = float(diff.max())
        row["same_counts"] = float(np.mean(counts[last] == ref["counts"][last][:k]))
        row["same_argmax"] = float(np.mean(
            np.argmax(readout.reshape(k, -1), 1) == np.argmax(ref["readout"][:k].reshape(k, -1), 1)))
        per_image = row["median"] / imgs
        row["img_s"] = 1.0 / per_image
        row["events_s"] = ref["events_per_image"] / per_image
        row["gflops"] = 2 * ref["dense_per_image"] / per_image / 1e9
        rows.append(row)
    peer_times = [r["median"] / r["images"] for r in rows if r["contender"].is_peer]
    f64_times = [r["median"] / r["images"] for r in rows
                 if r["contender"].is_peer and r["contender"].precision == "float64"]
    best = min(peer_times) if peer_times else None
    best64 = min(f64_times) if f64_times else None
    for r in rows:
        t = r["median"] / r["images"]
        r["vs_best"] = ratio_text(t, best)
        r["vs_best64"] = ratio_text(t, best64)
    log("    " + ", ".join(f"{r['contender'].name} {r['median']:.3f} s" for r in rows)
        + f"; others' CPU {100 * config_others:.0f}%")
    for name, estimate in skipped:
        rows.append(dict(skipped=name, estimate=estimate))
    return rows, ref


# --------------------------------------------------------------------------- breakdown

def refsnn_breakdown(sim, x, steps, threads):
    """Seconds per node of one refsnn run, the event-list scans split out of the synapses.

    Wraps each step op and the ``events_numba`` used by the conv / linear kernels with timers
    for this run only (restored afterwards); the rest of the wall time is the simulator's own
    per-step bookkeeping (spike counting, readout sum, Python loop).
    """
    numba.set_num_threads(threads)
    times = {}
    current = [None]
    originals = {}

    def wrap_step(op):
        inner = op.step
        name = op.node.name

        def step(state, *xs):
            current[0] = name
            t0 = time.perf_counter()
            out = inner(state, *xs)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            return out
        return inner, step

    def timed_events(fn):
        def events(*a):
            t0 = time.perf_counter()
            fn(*a)
            key = f"{current[0]} (event scan)"
            times[key] = times.get(key, 0.0) + time.perf_counter() - t0
        return events

    for mod in (_conv_mod, _linear_mod):
        originals[mod] = mod.events_numba
        mod.events_numba = timed_events(mod.events_numba)
    saved = []
    try:
        for op in sim.ops:
            inner, step = wrap_step(op)
            saved.append((op, inner))
            op.step = step
        sim.run(x, 1)
        times.clear()
        t0 = time.perf_counter()
        sim.run(x, steps)
        total = time.perf_counter() - t0
    finally:
        for op, _ in saved:
            del op.step
        for mod, fn in originals.items():
            mod.events_numba = fn
    return total, times


def peer_breakdown(peer, x, steps):
    peer.run(x, 1)
    prof = {}
    t0 = time.perf_counter()
    peer.run(x, steps, profile=prof)
    return time.perf_counter() - t0, prof


# --------------------------------------------------------------------------- report

def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "numba": numba.__version__, "torch": torch.__version__ if torch else "not used"}
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    out["refsnn"] = refsnn.__version__ + (f" (git {rev})" if rev else "")
    return out


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()
            if i["user_api"] == "blas"]
    return ", ".join(sorted(set(info))) or "unknown"


def fmt_time(s):
    return f"{s * 1e3:.1f}" if s >= 0.01 else f"{s * 1e3:.2f}"


def fmt_rate(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.1f}"


def report(header, limits, results, rate_rows, first_runs, breakdowns, notes):
    lines = ["# refsnn simulator benchmark", ""]
    lines += [f"- **command**: `{header['command']}`",
              f"- **date**: {header['date']} (run took {header['elapsed']:.0f} s)",
              f"- **versions**: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()),
              f"- **CPU**: {header['cpu']}, {header['cores']} logical cores usable",
              f"- **threads**: refsnn numba {ARGS.threads} (layer `{header['layer']}`) and 1; "
              f"torch {torch.get_num_threads() if torch else '-'} intra-op; NumPy BLAS "
              f"{header['blas']}; NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}, "
              f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}",
              f"- **load average** (1 min) at start {header['load'][0]:.2f}, at end "
              f"{header['load'][1]:.2f}: other processes on this machine share the cores and "
              f"inflate times",
              f"- **machine limits**: GEMM 2048x2048 float64 {limits['float64']:.1f} GFLOP/s, "
              f"float32 {limits['float32']:.1f} GFLOP/s (NumPy BLAS, all cores); memory copy "
              f"{limits['copy']:.1f} GB/s (np.copyto 256 MiB, read + write, one thread)",
              f"- **timing**: median of {ARGS.repeats} passes after a 2-step warm-up; the "
              f"passes of all contenders of a row group are interleaved round-robin; batch 1 "
              f"passes run the listed number of samples one by one"
              + (f"; waited up to {ARGS.wait_quiet:g} s for idle cores before each round"
                 if ARGS.wait_quiet else "")]
    for n in notes:
        lines.append(f"- {n}")
    lines += ["", "How to read: *vs best peer* is this row's time per image over the fastest "
              "peer's (dense NumPy / PyTorch, any precision); *vs best f64 peer* uses only "
              "float64 peers, refsnn's own precision. *syn. events/s* is the workload's "
              "synaptic events (refsnn's spikes x fan-out, plus analog input values x fan-out) "
              "over the row's time, the same numerator for every contender; *dense GFLOP/s* "
              "is 2 x the multiply-adds a dense step does (all layers, every step) over the "
              "row's time, to set against the GEMM limit above. *max readout diff* and *same "
              "last counts* compare the row's output with refsnn numba's (spike counts of "
              "the last neuron layer equal, per neuron). *peak RSS* is the process-wide "
              "maximum so far (ru_maxrss): it only grows, row after row. *others' CPU* is the "
              "share of all cores that other processes used during the row's timed passes "
              f"(from /proc/stat, in clock ticks; `~`: the row's passes were too short to "
              f"measure, so the value is its row group's); rows above {100 * NOISY:.0f}% are "
              "flagged `!`: their times are inflated, the parallel contenders' most.", ""]

    for work, configs in results:
        lines += [f"## {work.name}", "", f"{work.description}.", "",
                  f"`{wl.architecture(work.net.graph)}`", ""]
        lines += ["| T | batch | contender | ms / call | images/s | syn. events/s | "
                  "dense GFLOP/s | vs best peer | vs best f64 peer | max readout diff | "
                  "same last counts | same argmax | peak RSS MB | others' CPU |",
                  "|---:|---:|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|"]
        for (steps, batch), rows in configs:
            for r in rows:
                if "skipped" in r:
                    lines.append(f"| {steps} | {batch} | {r['skipped']} | skipped: one pass "
                                 f"would take about {r['estimate']:.0f} s (limit "
                                 f"{SKIP_1T_S:g} s) |" + " |" * 10)
                    continue
                c = r["contender"]
                name = c.name + (" *" if c.note == "oracle" else "")
                bcol = f"{batch}" if batch != 1 else f"1 (x{r['calls']})"
                flag = " !" if abs(r["others"]) > NOISY else ""
                approx = "~" if r["others"] < 0 else ""
                lines.append(
                    f"| {steps} | {bcol} | {name} | {fmt_time(r['median'] / r['calls'])} | "
                    f"{r['img_s']:.1f} | {fmt_rate(r['events_s'])} | {r['gflops']:.2f} | "
                    f"{r['vs_best']} | {r['vs_best64']} | {r['max_diff']:.2g} | "
                    f"{100 * r['same_counts']:.2f}% | {100 * r['same_argmax']:.0f}% | "
                    f"{r['rss']:.0f} | {approx}{100 * abs(r['others']):.0f}%{flag} |")
        lines.append("")
    lines += ["\\* the refsnn NumPy backend is the reference oracle (plain loops, bit-identical "
              "to the numba backend by design), timed on a quarter of the batch-1 samples and "
              "only on the digits workloads; it is not a contender and is not a peer.", ""]

    lines += ["## Activity", "",
              "Mean firing rate per neuron layer (spikes per neuron per step) from refsnn's "
              "`run.counts`, batch 32. *events / image / step* is synaptic events per image "
              "per step; *event density* is that over the multiply-adds of a dense step: the "
              "fraction of the dense work an event-driven simulator has to do.", "",
              "| workload | T | firing rate per layer | syn. events / image / step | "
              "dense MACs / image / step | event density |",
              "|---|---:|---|---:|---:|---:|"]
    for name, steps, ref in rate_rows:
        rates = ", ".join(f"{k} {v:.3f}" for k, v in ref["rates"].items())
        ev = ref["events_per_image"] / steps
        dn = ref["dense_per_image"] / steps
        lines.append(f"| {name} | {steps} | {rates} | {fmt_rate(ev)} | {fmt_rate(dn)} | "
                     f"{ev / dn:.3f} |")
    lines.append("")

    lines += ["## First run", "",
              f"Time of the first `Simulator.run` of each workload ({REFSNN}, batch 1, T=32), "
              "against the warm median of the same call. The first workload's first run "
              "loads the kernels from Numba's on-disk cache (or compiles them when the cache "
              "is missing or stale); later workloads reuse the loaded kernels.", "",
              "| workload | first run ms | warm ms | first - warm ms |", "|---|---:|---:|---:|"]
    for name, first, warm in first_runs:
        lines.append(f"| {name} | {fmt_time(first)} | {fmt_time(warm)} | "
                     f"{fmt_time(first - warm)} |")
    lines.append("")

    if breakdowns:
        lines += ["## Where the time goes", "",
                  "One extra, separately timed run per workload, batch 32, T=32: seconds per "
                  "node (all steps). For refsnn the event-list scan inside the synapse kernels "
                  "is split out, and *bookkeeping* is the simulator's own per-step work "
                  "(spike counting, readout, Python loop): the run's wall time minus the "
                  "nodes'. Timers add a little overhead.", ""]
        for name, entries in breakdowns:
            cols = [c for c, _, _ in entries]
            keys = []
            for _, _, times in entries:
                for k in times:
                    if k not in keys:
                        keys.append(k)
            lines += [f"**{name}**", "", "| node | " + " | ".join(cols) + " |",
                      "|---|" + "---:|" * len(cols)]
            for k in keys:
                lines.append(f"| {k} | " + " | ".join(
                    f"{times[k]:.3f}" if k in times else "" for _, _, times in entries) + " |")
            lines.append("| bookkeeping | " + " | ".join(
                f"{total - sum(v for kk, v in times.items() if '(event scan)' not in kk):.3f}"
                for _, total, times in entries) + " |")
            lines.append("| **total** | " + " | ".join(
                f"**{total:.3f}**" for _, total, _ in entries) + " |")
            lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def main():
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    quick = ARGS.quick
    step_list = [32] if quick else [32, 128]
    repeats = ARGS.repeats
    notes = []
    if TORCH_NOTE:
        notes.append(TORCH_NOTE)
        log(TORCH_NOTE)
    numba.set_num_threads(ARGS.threads)

    log("machine limits ...")
    limits = machine_limits(repeats)

    wanted = [w.strip() for w in ARGS.workloads.split(",") if w.strip()]
    builders = {
        "digits-mlp": lambda: wl.digits("mlp", n_single=8 if quick else 16),
        "digits-cnn": lambda: wl.digits("cnn", n_single=8 if quick else 16),
        "rand-mlp": lambda: wl.rand_mlp(64, n_single=8 if quick else 16),
        "rand-vgg": lambda: wl.rand_vgg(64, n_single=2 if quick else 4),
    }
    unknown = [w for w in wanted if w not in builders]
    if unknown:
        sys.exit(f"--workloads: unknown {unknown}; choose from {sorted(builders)}")

    results, rate_rows, first_runs, breakdowns = [], [], [], []
    layer = "?"
    for name in wanted:
        log(f"building {name} ...")
        work = builders[name]()
        sims = {"numba": Simulator(work.net, "numba"), "numpy": Simulator(work.net, "numpy")}
        numba.set_num_threads(ARGS.threads)
        t0 = time.perf_counter()
        sims["numba"].run(work.x[:1], 32)
        first = time.perf_counter() - t0
        try:
            layer = numba.threading_layer()
        except ValueError:
            pass
        conts = contenders_for(work, sims)
        configs = []
        for steps in step_list:
            for batch in (1, 32):
                rows, ref = run_config(work, sims, conts, steps, batch, repeats)
                configs.append(((steps, batch), rows))
                if batch == 32:
                    rate_rows.append((work.name, steps, ref))
                if batch == 1 and steps == 32:
                    first_runs.append((work.name, first, rows[0]["median"] / rows[0]["calls"]))
        results.append((work, configs))

        if quick:
            continue
        log(f"  {work.name}: time breakdown ...")
        x32 = work.x[:32]
        entries = []
        total, times = refsnn_breakdown(sims["numba"], x32, 32, ARGS.threads)
        entries.append((REFSNN, total, times))
        total, times = peer_breakdown(peers.DenseNumpy(work.net, "float64"), x32, 32)
        entries.append(("numpy dense 64", total, times))
        if torch is not None:
            total, times = peer_breakdown(peers.DenseTorch(work.net, torch, "float32"), x32, 32)
            entries.append(("torch dense 32", total, times))
        breakdowns.append((work.name, entries))

    header = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": versions(), "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "layer": layer, "blas": blas_threads(),
        "load": (load0, os.getloadavg()[0]),
        "elapsed": time.perf_counter() - t_start,
    }
    text = report(header, limits, results, rate_rows, first_runs, breakdowns, notes)
    out = Path(ARGS.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    log(f"wrote {out} ({header['elapsed']:.0f} s)")


if __name__ == "__main__":
    main()
