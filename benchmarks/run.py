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


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="a reduced run (T=32, the small VGG, fewer samples): a few minutes")
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
                   help="skip the PyTorch peers (and SpikingJelly) even if torch is installed")
    p.add_argument("--no-spikingjelly", action="store_true",
                   help="skip the SpikingJelly peer even if it is installed")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurements (one fresh process per contender)")
    p.add_argument("--workloads", default=None,
                   help="comma-separated workloads (default: digits-mlp,digits-cnn,mlp,vgg; "
                        "--quick: vgg-small instead of vgg)")
    p.add_argument("--methods", default="if,signgd", help="comma-separated: if, signgd")
    p.add_argument("--steps", default=None,
                   help="comma-separated T (default 32,128; --quick: 32)")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes: 1, 32")
    p.add_argument("--skip-slow", type=float, default=None, metavar="SECONDS",
                   help="skip an optional row (1 thread, SpikingJelly float64) when one of its "
                        "passes would take longer (default 30; --quick: 3)")
    p.add_argument("--long-pass", type=float, default=60.0, metavar="SECONDS",
                   help="a row group whose slowest pass would take longer gets 1 timed pass "
                        "instead of --repeats (default: %(default)s)")
    return p.parse_args(argv)


def thread_env(args) -> None:
    """Fix the thread counts; they take effect only before NumPy / Numba / PyTorch load.

    OMP_NUM_THREADS sizes the OpenMP pools (Numba's omp threading layer, PyTorch's intra-op
    pool); OPENBLAS_* is left alone, so NumPy's BLAS keeps its own default (one thread per
    core).
    """
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.omp_wait_policy != "default":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()


if __name__ == "__main__":
    thread_env(parse_args())  # run as a script: before the imports below

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmark the working tree's refsnn

import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import refsnn  # noqa: E402
import refsnn.synapses.conv as _conv_mod  # noqa: E402
import refsnn.synapses.linear as _linear_mod  # noqa: E402
from refsnn.model.format import save_model  # noqa: E402
from refsnn.sim.network import save_snn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contenders as ct  # noqa: E402
import peers  # noqa: E402
from memprobe import reset_peak, status_mb  # noqa: E402
import workloads as wl  # noqa: E402

#: Set by :func:`configure` (``main`` calls it): the arguments, the notes for the report,
#: the imported ``torch`` (or None), SpikingJelly's version (or None) and the slow-row limit.
ARGS = None
NOTES = []
torch = None
SJ_VERSION = None
SKIP_S = None


def configure(args) -> None:
    """Set the module's run settings from the parsed arguments (torch imported if used)."""
    global ARGS, torch, SJ_VERSION, SKIP_S
    ARGS, torch, SJ_VERSION = args, None, None
    NOTES.clear()
    if args.no_torch:
        NOTES.append("torch peers (dense torch, SpikingJelly, ANN) skipped (--no-torch)")
    else:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
            NOTES.append("torch is not installed: torch peers (dense torch, SpikingJelly, ANN) "
                         "skipped")
    if torch is not None and not args.no_spikingjelly:
        try:
            import spikingjelly
            SJ_VERSION = getattr(spikingjelly, "__version__", None) or "installed"
            try:
                from importlib.metadata import version
                SJ_VERSION = version("spikingjelly")
            except Exception:  # noqa: BLE001 - the version is only printed
                pass
        except ImportError:
            NOTES.append("spikingjelly is not installed: its peer skipped")
    elif args.no_spikingjelly:
        NOTES.append("SpikingJelly peer skipped (--no-spikingjelly)")
    # Skip an optional row (1 thread, SpikingJelly float64) when one of its passes would take
    # longer than this (estimated from its warm-up): it keeps --quick at a few minutes.
    SKIP_S = args.skip_slow if args.skip_slow is not None else (3.0 if args.quick else 30.0)


# An optional row is also skipped when its memory would grow beyond this share of what is
# available.
MEMORY_SHARE = 0.5


def available_mb() -> float:
    """MemAvailable of /proc/meminfo, MB (inf where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("inf")
NOISY = 0.10  # others' share of the cores above which a row is flagged
MIN_LOAD_S = 0.5  # shorter timings take the others' load of their whole row group
MEMPROBE = Path(__file__).resolve().parent / "memprobe.py"


_T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - _T0:6.1f} s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine limits

@numba.njit(parallel=True, cache=False)
def _triad(a, b, c, s):
    for i in numba.prange(a.size):
        a[i] = b[i] + s * c[i]


def machine_limits(repeats: int) -> dict:
    """GEMM GFLOP/s (2048x2048, NumPy's BLAS), copy and STREAM-triad bandwidth (GB/s).

    Triad: ``a = b + s*c`` on three float64 arrays of 256 MiB in a Numba ``prange`` loop on
    ``--threads`` threads, counting 3 x 256 MiB moved per pass (STREAM's convention: the
    write-allocate read of ``a`` is not counted). Copy: ``np.copyto`` of 256 MiB, one thread,
    read + write counted. The best of ``repeats`` passes.
    """
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
    c = np.full_like(src, 2.0)
    numba.set_num_threads(ARGS.threads)
    _triad(dst, src, c, 3.0)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad(dst, src, c, 3.0)
        ts.append(time.perf_counter() - t0)
    out["triad"] = 3 * src.nbytes / min(ts) / 1e9
    out["llc"] = last_level_cache()
    return out


def last_level_cache() -> int:
    """Bytes of the largest CPU cache (sysfs), 0 if unknown."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip()
        unit = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KMG")) * unit)
        except ValueError:
            pass
    return max(sizes, default=0)


def best_limits(a: dict, b: dict) -> dict:
    """The better of two measurements of each limit (the less disturbed by other processes)."""
    return {k: max(a[k], b[k]) for k in a}


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


def one_pass(run, batches, steps):
    """Time one pass over ``batches``; returns (seconds, others' share, results)."""
    gc.collect()
    load = OtherLoad()
    load.start()
    t0 = time.perf_counter()
    results = [run(xb, steps) for xb in batches]
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


class Group:
    """One (workload, method): its converted networks, contenders and their run functions."""

    def __init__(self, work, method):
        self.work, self.method = work, method
        self.nets = {p: wl.convert(work, method, p) for p in ("float64", "float32")}
        self.specs = ct.contenders(method, ARGS.threads, work.oracle, torch is not None,
                                   SJ_VERSION is not None)
        self.runs = {c.name: ct.build(c, self.nets[c.precision], work.graph, torch)
                     for c in self.specs}
        self.title = f"{work.name}, {METHOD_TITLES[method]}"

    @property
    def reference(self):
        return self.specs[0]  # refsnn numba float64, N threads


METHOD_TITLES = {"if": "IF", "signgd": "signGD"}


def limit_seconds(group, c, steps, calls, images, events):
    """The machine's limit for one row: ``(seconds, "C" or "M")``.

    The larger of two lower bounds, from the measured machine limits:

    - compute (C): the row's necessary arithmetic at the GEMM peak of its precision: 2 FLOPs
      (a multiply and an add) per synaptic event or per multiply-add of the dense steps,
      whichever is fewer (the cheaper of the two ways to do the work; the same count for every
      row of a group; for the ANN row, per multiply-add of one dense forward pass);
    - memory (M): the bytes that must move at the triad bandwidth: every synapse layer's
      weights once per step and call (batch 32 reuses them across the batch, batch 1 reads
      them per input), and every neuron's state read and written once per step and input
      (the ANN row: its weights once per call). Only when the weights and one call's neuron
      state do not fit in the last-level cache: otherwise they need not leave the cache
      between steps, and there is no memory bound (the compute bound holds).
    """
    graph = group.nets[c.precision].graph
    item = np.dtype(c.precision).itemsize
    if c.note == "ann":
        flops = 2 * wl.dense_macs(group.work.graph, images)
        nbytes = calls * wl.synapse_bytes(graph)
    else:
        flops = 2 * min(events, wl.dense_macs(graph, images) * steps)
        nbytes = (calls * steps * wl.synapse_bytes(graph)
                  + 2 * images * steps * wl.state_elements(graph) * item)
    t_c = flops / (LIMITS[c.precision] * 1e9)
    working_set = wl.synapse_bytes(graph) + images // calls * wl.state_elements(graph) * item
    t_m = nbytes / (LIMITS["triad"] * 1e9) if working_set > LIMITS["llc"] else 0.0
    return (t_c, "C") if t_c >= t_m else (t_m, "M")


def run_config(group, steps, batch, repeats):
    """All contenders on one (workload, method, T, batch); returns the table rows and facts."""
    work = group.work
    if batch == 1:
        batches = [work.x[i:i + 1] for i in range(work.n_single)]
        oracle_batches = batches[:max(1, work.n_single // 4)]
    else:
        batches = [work.x[:batch]]
        oracle_batches = None  # the oracle only runs at batch 1
    net = group.nets["float64"]
    last = net.neuron_nodes()[-1]
    plan = []
    for c in group.specs:
        if c.note == "oracle":
            if oracle_batches is not None:
                plan.append((c, oracle_batches))
        else:
            plan.append((c, batches))
    # Warm-up (2 steps on one batch), then the timed passes interleaved round-robin, so
    # that a change of load on the machine hits every contender alike.
    skipped, longest = [], 0.0
    for c, bs in list(plan):
        # Memory that grows with T (SpikingJelly's multi-step tensors hold every step): the
        # peak of a 1-step run, then of the 2-step warm-up; their difference is the growth per
        # step. A run that would not fit is killed by the kernel and takes the whole benchmark
        # with it (seen: the VGG at T = 128).
        rss0, peak_reset = status_mb("VmRSS"), reset_peak()
        group.runs[c.name](bs[0], 1)
        peak1 = status_mb("VmHWM")
        reset_peak()
        t0 = time.perf_counter()
        group.runs[c.name](bs[0], min(steps, 2))
        estimate = (time.perf_counter() - t0) * len(bs) * steps / min(steps, 2)
        if c.note == "ann":
            estimate = (time.perf_counter() - t0) * len(bs)
        peak2 = status_mb("VmHWM")
        grown_mb = (max(peak1, peak2) - rss0 + max(0.0, peak2 - peak1) * (steps - 2)
                    if peak_reset else 0.0)
        # In this process, memory that earlier rows freed stays resident (the allocator keeps
        # it), so the warm-ups above can show no growth at all (seen: 0.0 GB for SpikingJelly
        # float64 on the VGG at T = 128, which needs about 29 GB). A fresh-process measurement
        # of the same contender at a smaller T, scaled by T, is the safer bound.
        measured = RUN_MB.get((group.title, c.name, batch))
        if measured is not None and steps > measured[0]:
            grown_mb = max(grown_mb, measured[1] * steps / measured[0])
        if c.optional:
            log(f"  {c.name}: a pass would take about {estimate:.1f} s and grow memory by "
                f"about {grown_mb / 1024:.1f} GB")
        if c.optional and (estimate > SKIP_S or grown_mb > MEMORY_SHARE * available_mb()):
            plan.remove((c, bs))
            skipped.append((c.name, estimate, grown_mb))
        else:
            longest = max(longest, estimate)
    if longest > ARGS.long_pass:
        repeats = 1
    passes = {c.name: [] for c, _ in plan}
    config_load = OtherLoad()
    config_load.start()
    for rep in range(repeats):
        wait_quiet(ARGS.wait_quiet)
        log(f"  {group.title} T={steps} batch={batch}: pass {rep + 1}/{repeats}")
        for c, bs in plan:
            passes[c.name].append(one_pass(group.runs[c.name], bs, steps))
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
        imgs = sum(b.shape[0] for b in bs)
        row = dict(contender=c, times=times, median=statistics.median(times), calls=len(bs),
                   images=imgs, others=others, repeats=len(times))
        if ref is None:  # refsnn numba float64, the reference output
            counts = {k: np.concatenate([r[1][k] for r in results]) for k in results[0][1]}
            ref = dict(readout=readout, counts=counts)
            x_all = np.concatenate(bs)
            events = wl.synaptic_events(net, counts, x_all, steps)
            dense = wl.dense_macs(net.graph, imgs) * steps
            ref.update(events_per_image=events / imgs, dense_per_image=dense / imgs,
                       rates={k: float(v.mean()) / steps for k, v in counts.items()})
        k = readout.shape[0]
        flat = readout.reshape(k, -1)
        ref_flat = ref["readout"][:k].reshape(k, -1)
        row["same_argmax"] = float(np.mean(np.argmax(flat, 1) == np.argmax(ref_flat, 1)))
        if c.note == "ann":  # the ANN's logits, not a simulation: only the argmax compares
            row["max_diff"] = row["same_counts"] = None
            per_image = row["median"] / imgs
            row["events_s"] = None
            row["gflops"] = 2 * wl.dense_macs(work.graph, 1) / per_image / 1e9
        else:
            counts_last = np.concatenate([r[1][last] for r in results])
            row["max_diff"] = float(np.max(np.abs(flat.astype(np.float64) - ref_flat)))
            row["same_counts"] = float(np.mean(counts_last == ref["counts"][last][:k]))
            per_image = row["median"] / imgs
            row["events_s"] = ref["events_per_image"] / per_image
            row["gflops"] = 2 * ref["dense_per_image"] / per_image / 1e9
        row["img_s"] = 1.0 / per_image
        # the ratio is computed at the end, with the final machine limits (finish_limits)
        row["limit_args"] = (group, c, steps, len(bs), imgs, ref["events_per_image"] * imgs)
        rows.append(row)
    peer_times = [r["median"] / r["images"] for r in rows if r["contender"].is_peer]
    f64_times = [r["median"] / r["images"] for r in rows
                 if r["contender"].is_peer and r["contender"].precision == "float64"]
    best = min(peer_times) if peer_times else None
    best64 = min(f64_times) if f64_times else None
    best_row = None
    for r in rows:
        if r["contender"].is_peer and r["median"] / r["images"] == best:
            best_row = r
    for r in rows:
        t = r["median"] / r["images"]
        r["vs_best"] = ratio_text(t, best)
        r["vs_best64"] = ratio_text(t, best64)
    log("    " + ", ".join(f"{r['contender'].name} {r['median']:.3f} s" for r in rows)
        + f"; others' CPU {100 * config_others:.0f}%")
    ref["best_peer"] = best_row
    for name, estimate, grown_mb in skipped:
        rows.append(dict(skipped=name, estimate=estimate, grown_mb=grown_mb))
    return rows, ref


def finish_limits(results):
    """Every row's ratio to the machine's limit, from the final ``LIMITS``."""
    for _, configs in results:
        for _, rows in configs:
            for r in rows:
                if "limit_args" in r:
                    t_lim, bound = limit_seconds(*r["limit_args"])
                    r["vs_limit"] = f"{r['median'] / t_lim:.1f}x ({bound})"


#: Contender kinds whose memory grows with T (multi-step holds all T steps of a layer);
#: the others keep per-step state only, so they are measured at the first T of the run.
MEMORY_GROWS_WITH_T = ("spikingjelly",)
#: (row group title, contender name, batch) -> (T, MB its run added), from the fresh-process
#: measurements so far; ``run_config`` scales them to a larger T to decide what to skip.
RUN_MB: dict = {}


def measure_memory(group, rows, steps, batch, tmp, first_steps):
    """Peak memory of every timed contender of a batch-``batch`` row group, fresh processes.

    Writes the group's networks, ANN and batch to ``tmp`` once, then runs ``memprobe.py``
    per contender (not the 1-thread row: same data structures as the N-thread one) and adds
    its result to the row as ``mem``.
    """
    work = group.work
    paths = {"graph": tmp / "ann.h5", "x": tmp / f"x{batch}.npy"}
    if not paths["graph"].exists():
        save_model(work.graph, paths["graph"])
        for p, net in group.nets.items():
            save_snn(net, tmp / f"{group.method}-{p}.h5")
    if not paths["x"].exists():
        np.save(paths["x"], work.x[:batch])
    for r in rows:
        c = r.get("contender")
        if c is None or c.note == "oracle" or (c.kind == "refsnn" and c.threads == 1):
            continue
        if steps != first_steps and c.kind not in MEMORY_GROWS_WITH_T:
            r["mem"] = {"same_as": first_steps}
            continue
        spec = {"contender": c.__dict__, "threads": ARGS.threads, "steps": steps,
                "net": str(tmp / f"{group.method}-{c.precision}.h5"),
                "graph": str(paths["graph"]), "x": str(paths["x"])}
        spec_path = tmp / "spec.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            out = subprocess.run([sys.executable, str(MEMPROBE), str(spec_path)], env=env,
                                 capture_output=True, text=True, timeout=3600)
            if out.returncode != 0:
                raise RuntimeError(out.stderr.strip()[-300:])
            r["mem"] = json.loads(out.stdout.strip().splitlines()[-1])
            RUN_MB[(group.title, c.name, batch)] = (steps, r["mem"]["run_mb"])
        except (subprocess.SubprocessError, RuntimeError, ValueError, IndexError) as e:
            r["mem"] = {"error": str(e)[-300:]}
            log(f"    memory of {c.name}: failed: {r['mem']['error']}")


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
    """The CPU's name, with what Numba compiles refsnn's kernels for: LLVM's name for the CPU
    (a model name like "Intel(R) Xeon(R) Processor" does not say which generation) and the
    vector width (:data:`refsnn.jit.VECTOR_BYTES`), which decide how fast the kernels run."""
    import llvmlite.binding
    from numba.core import config
    from refsnn.jit import VECTOR_BYTES
    name = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    llvm = config.CPU_NAME or llvmlite.binding.get_host_cpu_name()
    return f"{name} (LLVM `{llvm}`, kernels compiled for {VECTOR_BYTES * 8}-bit vectors)"


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


def fmt_mem(r):
    m = r.get("mem")
    if m is None:
        return "-"
    if "error" in m:
        return "failed"
    if "same_as" in m:
        return f"as T={m['same_as']}"
    bound = "" if m["raised"] else "<="
    return f"{m['peak_mb']:.0f} ({bound}+{m['run_mb']:.0f})"


def pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}%"


def report(header, limits, results, rate_rows, first_runs, breakdowns, notes):
    lines = ["# refsnn simulator benchmark", ""]
    lines += [f"- **command**: `{header['command']}`",
              f"- **date**: {header['date']} (run took {header['elapsed']:.0f} s)",
              "- **versions**: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()),
              f"- **CPU**: {header['cpu']}, {header['cores']} logical cores usable",
              f"- **threads**: refsnn numba {ARGS.threads} (layer `{header['layer']}`) and 1; "
              f"torch {torch.get_num_threads() if torch else '-'} intra-op; NumPy BLAS "
              f"{header['blas']}; NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', '(unset)')}, "
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
              f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '(unset)')} (refsnn sets 1000 "
              f"unless a policy or count is given)",
              f"- **load average** (1 min) at start {header['load'][0]:.2f}, at end "
              f"{header['load'][1]:.2f}: other processes on this machine share the cores and "
              f"inflate times",
              f"- **machine limits**: GEMM 2048x2048 float64 {limits['float64']:.1f} GFLOP/s, "
              f"float32 {limits['float32']:.1f} GFLOP/s (NumPy BLAS, all cores); memory "
              f"bandwidth: STREAM triad {limits['triad']:.1f} GB/s (Numba, {ARGS.threads} "
              f"threads, 3 x 256 MiB), copy {limits['copy']:.1f} GB/s (np.copyto 256 MiB, "
              f"read + write, one thread); last-level cache {limits['llc'] / 2 ** 20:.0f} "
              f"MiB. Each the better of a measurement at the start and one at the end of "
              f"the run",
              f"- **timing**: median of {ARGS.repeats} passes after a 2-step warm-up (1 pass "
              f"where the slowest contender's pass would exceed {ARGS.long_pass:g} s); the "
              f"passes of all contenders of a row group are interleaved round-robin; batch 1 "
              f"passes run the listed number of samples one by one"
              + (f"; waited up to {ARGS.wait_quiet:g} s for idle cores before each round"
                 if ARGS.wait_quiet else "")]
    for n in notes:
        lines.append(f"- {n}")
    lines += ["", "How to read: *vs best peer* is this row's time per image over the fastest "
              "peer's (dense NumPy / PyTorch loops, SpikingJelly multi-step; any precision); "
              "*vs best f64 peer* uses only float64 peers, refsnn's default precision; signGD "
              "has no peer (none implements signGD neurons). *vs limit* is the row's time "
              "over the machine's limit for the same work: the larger of the compute bound "
              "(C: 2 FLOPs per synaptic event or per dense multiply-add, whichever is fewer, "
              "at the GEMM peak of the row's precision) and "
              "the memory bound (M: weights once per step and call, neuron state read and "
              "written once per step, at the triad bandwidth; only when they do not fit in "
              "the last-level cache). A ratio below 1 means a limit was measured while other "
              "processes used the cores. *syn. events/s* is the "
              "workload's synaptic events (refsnn's spikes x fan-out, plus input values x "
              "fan-out; signGD neurons emit every step) over the row's time, the same "
              "numerator for every contender; *dense GFLOP/s* is 2 x the multiply-adds a "
              "dense step does (all layers, every step) over the row's time. *max readout "
              "diff* and *same last counts* compare the row's output with refsnn numba "
              "float64's (spike counts of the last neuron layer equal, per neuron). *peak MB* "
              "is the peak resident memory of a fresh process running the row on the batch "
              "(batch-32 rows, at the first T except for SpikingJelly, whose memory grows with T; "
              "in brackets what the run added over the loaded contender; "
              "`<=`: the peak mark could not be reset, so the peak includes loading). *others' CPU* is the "
              "share of all cores that other processes used during the row's timed passes "
              f"(from /proc/stat; `~`: too short to measure, the row group's value); rows "
              f"above {100 * NOISY:.0f}% are flagged `!`.", ""]

    lines += ["## Summary", "",
              "refsnn numba (N threads) per (workload, method, T, batch), against the fastest "
              "peer of the same row group and the machine's limit; *f64 / f32* is refsnn's "
              "float64 time over its float32 time.", "",
              "| workload | method | T | batch | refsnn f64 ms | refsnn f32 ms | f64 / f32 | "
              "best peer | peer ms | f32 vs best peer | f64 vs best peer | f32 vs limit | "
              "f64 vs limit |", "|---|---|---:|---:|---:|---:|---:|---|---:|---|---|---|---|"]
    for group, configs in results:
        for (steps, batch), rows in configs:
            timed = [r for r in rows if "skipped" not in r]
            r64, r32 = timed[0], timed[1]
            best = min((r for r in timed if r["contender"].is_peer),
                       key=lambda r: r["median"] / r["images"], default=None)
            per = lambda r: r["median"] / r["calls"]  # noqa: E731
            lines.append(
                f"| {group.work.name} | {METHOD_TITLES[group.method]} | {steps} | {batch} | "
                f"{fmt_time(per(r64))} | {fmt_time(per(r32))} | "
                f"{r64['median'] / r32['median']:.2f} | "
                + (f"{best['contender'].name} | {fmt_time(per(best))} | "
                   if best else "no peer | | ")
                + f"{r32['vs_best']} | {r64['vs_best']} | {r32['vs_limit']} | "
                f"{r64['vs_limit']} |")
    lines.append("")

    for group, configs in results:
        lines += [f"## {group.title}", "", f"{group.work.description}.", "",
                  f"`{wl.architecture(group.nets['float64'].graph)}`", ""]
        lines += ["| T | batch | contender | ms / call | images/s | syn. events/s | "
                  "dense GFLOP/s | vs best peer | vs best f64 peer | vs limit | "
                  "max readout diff | same last counts | same argmax | peak MB | "
                  "others' CPU |",
                  "|---:|---:|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|"]
        for (steps, batch), rows in configs:
            for r in rows:
                if "skipped" in r:
                    lines.append(f"| {steps} | {batch} | {r['skipped']} | skipped: one pass "
                                 f"would take about {r['estimate']:.0f} s (limit "
                                 f"{SKIP_S:g} s) and grow memory by about "
                                 f"{r['grown_mb'] / 1024:.1f} GB (limit {MEMORY_SHARE:g} of "
                                 f"what is available) |" + " |" * 11)
                    continue
                c = r["contender"]
                name = c.name + {"oracle": " *", "ann": " †"}.get(c.note, "")
                if r["repeats"] < ARGS.repeats:
                    name += f" ({r['repeats']} pass)"
                bcol = f"{batch}" if batch != 1 else f"1 (x{r['calls']})"
                flag = " !" if abs(r["others"]) > NOISY else ""
                approx = "~" if r["others"] < 0 else ""
                diff = "n/a" if r["max_diff"] is None else f"{r['max_diff']:.2g}"
                events = "n/a" if r["events_s"] is None else fmt_rate(r["events_s"])
                lines.append(
                    f"| {steps} | {bcol} | {name} | {fmt_time(r['median'] / r['calls'])} | "
                    f"{r['img_s']:.1f} | {events} | {r['gflops']:.2f} | "
                    f"{r['vs_best']} | {r['vs_best64']} | {r['vs_limit']} | {diff} | "
                    f"{pct(r['same_counts'])} | {100 * r['same_argmax']:.0f}% | "
                    f"{fmt_mem(r)} | {approx}{100 * abs(r['others']):.0f}%{flag} |")
        lines.append("")
    lines += ["\\* the refsnn NumPy backend is the reference oracle (plain loops, bit-identical "
              "to the numba backend by design), timed on a quarter of the batch-1 samples and "
              "only on the digits workloads; it is not a contender and is not a peer.", "",
              "† the source ReLU ANN's forward pass in PyTorch float32, once per input (no time "
              "steps), for scale; not a peer. Its *dense GFLOP/s* and limit count one forward "
              "pass; *same argmax* compares the ANN's class with refsnn's.", ""]

    lines += ["## Activity", "",
              "Mean firing rate per neuron layer (spikes per neuron per step) from refsnn's "
              "`run.counts`, batch 32 (signGD: the rate of s = 1, the *lower the estimate* "
              "spikes; a signGD neuron emits an increment every step either way). *events / "
              "image / step* is synaptic events per image per step; *event density* is that "
              "over the multiply-adds of a dense step: the fraction of the dense work an "
              "event-driven simulator has to do.", "",
              "| workload | method | T | firing rate per layer | syn. events / image / step | "
              "dense MACs / image / step | event density |",
              "|---|---|---:|---|---:|---:|---:|"]
    for group, steps, ref in rate_rows:
        rates = ", ".join(f"{k} {v:.3f}" for k, v in ref["rates"].items())
        ev = ref["events_per_image"] / steps
        dn = ref["dense_per_image"] / steps
        lines.append(f"| {group.work.name} | {METHOD_TITLES[group.method]} | {steps} | "
                     f"{rates} | {fmt_rate(ev)} | {fmt_rate(dn)} | {ev / dn:.3f} |")
    lines.append("")

    lines += ["## First run", "",
              f"Time of the first `Simulator.run` of each workload and method (refsnn numba "
              f"{ARGS.threads}t float64, batch 1, T=32), against the warm median of the same "
              "call. The first run loads the kernels from Numba's on-disk cache (or compiles "
              "them when the cache is missing or stale) for the types it meets first; later "
              "groups reuse the loaded kernels.", "",
              "| workload | method | first run ms | warm ms | first - warm ms |",
              "|---|---|---:|---:|---:|"]
    for group, first, warm in first_runs:
        warm_text = fmt_time(warm) if warm is not None else "not timed"
        diff = fmt_time(first - warm) if warm is not None else ""
        lines.append(f"| {group.work.name} | {METHOD_TITLES[group.method]} | "
                     f"{fmt_time(first)} | {warm_text} | {diff} |")
    lines.append("")

    if breakdowns:
        lines += ["## Where the time goes", "",
                  "One extra, separately timed run per IF workload, batch 32, T=32: seconds per "
                  "node (all steps). For refsnn the event-list scan inside the synapse kernels "
                  "is split out, and *bookkeeping* is the simulator's own per-step work "
                  "(spike counting, readout, Python loop): the run's wall time minus the "
                  "nodes'. Timers add a little overhead. SpikingJelly runs each layer for all "
                  "steps at once.", ""]
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

LIMITS = {}
BUILDERS = {
    "digits-mlp": lambda quick: wl.digits("mlp", n_single=8 if quick else 16),
    "digits-cnn": lambda quick: wl.digits("cnn", n_single=8 if quick else 16),
    "mlp": lambda quick: wl.mlp(64, n_single=8 if quick else 16),
    "vgg": lambda quick: wl.vgg(64, n_single=2 if quick else 4),
    "vgg-small": lambda quick: wl.vgg_small(64, n_single=2 if quick else 4),
}


def _csv(text):
    return [w.strip() for w in text.split(",") if w.strip()]


def main(argv=None) -> int:
    """Run the benchmark with the command-line arguments ``argv`` (default: ``sys.argv``)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    configure(parse_args(argv))
    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    quick = ARGS.quick
    wanted = _csv(ARGS.workloads or ("digits-mlp,digits-cnn,mlp,vgg-small" if quick
                                     else "digits-mlp,digits-cnn,mlp,vgg"))
    methods = _csv(ARGS.methods)
    step_list = [int(t) for t in _csv(ARGS.steps or ("32" if quick else "32,128"))]
    batch_list = [int(b) for b in _csv(ARGS.batches)]
    for what, got, known in (("--workloads", wanted, BUILDERS), ("--methods", methods,
                                                                   wl.METHODS),
                             ("--batches", batch_list, (1, 32))):
        unknown = [w for w in got if w not in known]
        if unknown:
            sys.exit(f"{what}: unknown {unknown}; choose from {sorted(known)}")
    repeats = ARGS.repeats
    notes = list(NOTES)
    for n in notes:
        log(n)
    numba.set_num_threads(ARGS.threads)

    log("machine limits ...")
    LIMITS.update(machine_limits(repeats))
    limits_start = dict(LIMITS)

    results, rate_rows, first_runs, breakdowns = [], [], [], []
    layer = "?"
    with tempfile.TemporaryDirectory(prefix="refsnn-bench-") as tmpdir:
        for name in wanted:
            log(f"building {name} ...")
            work = BUILDERS[name](quick)
            for method in methods:
                log(f" converting {name} with {method} (float64, float32) ...")
                group = Group(work, method)
                ref_run = group.runs[group.reference.name]
                numba.set_num_threads(ARGS.threads)
                t0 = time.perf_counter()
                ref_run(work.x[:1], 32)
                first = time.perf_counter() - t0
                try:
                    layer = numba.threading_layer()
                except ValueError:
                    pass
                tmp = Path(tmpdir) / f"{name}-{method}"
                tmp.mkdir()
                configs, warm = [], None
                for steps in step_list:
                    for batch in batch_list:
                        rows, ref = run_config(group, steps, batch, repeats)
                        if batch == 32 and not ARGS.no_memory:
                            log(f"  {group.title} T={steps} batch=32: peak memory ...")
                            measure_memory(group, rows, steps, batch, tmp, step_list[0])
                        configs.append(((steps, batch), rows))
                        if batch == 32:
                            rate_rows.append((group, steps, ref))
                        if batch == 1 and steps == 32:
                            warm = rows[0]["median"] / rows[0]["calls"]
                first_runs.append((group, first, warm))
                results.append((group, configs))

                if quick or method != "if" or 32 not in step_list:
                    continue
                log(f"  {group.title}: time breakdown ...")
                x32 = work.x[:32]
                entries = []
                total, times = refsnn_breakdown(ref_run.sim, x32, 32, ARGS.threads)
                entries.append((group.reference.name, total, times))
                total, times = peer_breakdown(peers.DenseNumpy(group.nets["float64"],
                                                               "float64"), x32, 32)
                entries.append(("numpy dense 64", total, times))
                if torch is not None:
                    total, times = peer_breakdown(
                        peers.DenseTorch(group.nets["float32"], torch, "float32"), x32, 32)
                    entries.append(("torch dense 32", total, times))
                    if SJ_VERSION is not None:
                        total, times = peer_breakdown(
                            peers.SpikingJellyMultiStep(group.nets["float32"], torch), x32, 32)
                        entries.append(("spikingjelly multi-step 32", total, times))
                breakdowns.append((group.title, entries))

    # Measured again at the end: each limit is the better of the two measurements (a limit
    # measured while other processes used the cores would be too low).
    log("machine limits, again ...")
    LIMITS.update(best_limits(limits_start, machine_limits(repeats)))
    finish_limits(results)
    header = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *argv]),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "versions": versions(), "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "layer": layer, "blas": blas_threads(),
        "load": (load0, os.getloadavg()[0]),
        "elapsed": time.perf_counter() - t_start,
    }
    text = report(header, LIMITS, results, rate_rows, first_runs, breakdowns, notes)
    out = Path(ARGS.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    log(f"wrote {out} ({header['elapsed']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
