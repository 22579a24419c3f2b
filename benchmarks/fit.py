#!/usr/bin/env python
"""Build, memory and solve figures of the ChIMES fit (``chimes-lsq`` and the compact-system solvers).

System: the 20 C/N frames (216 atoms each) of the hierarchical example of the ChIMES active-learning driver
with its ``fm_setup.in`` (Chebyshev orders 25/10/4, C-C and N-N interactions excluded, stresses and energies
fitted): 3747 columns, 660 rows per frame (``benchmarks/data/al_driver_CN``, unpacked into a temporary folder).
Rows are weighted as al_driver does by default (force 1, energy 0.1, stress 250).

1. *Build*: ``chimes-lsq fm_setup.in --compact-only --weights ...`` on 1 rank and under ``mpiexec -n 2``, one
   BLAS/numba thread per rank; per-frame times from the progress lines, process wall time, peak RSS.
2. *Memory*: the 20 frames' rows are built once (two 1-rank children in parallel) and saved one file per
   frame; fresh child processes then fold them into a FitSystem once (20 frames) and ten times (200 frames:
   the same rows replicated), reading one frame at a time, and report their peak RSS and ``system.nbytes``.
3. *Solves* (both cores): on the 20-frame weighted system, ``solve(..., "svd")`` against
   ``scipy.linalg.lstsq`` on the dense weighted A (same relative cutoff), and ``solve(..., "lassolars")`` /
   ``solve(..., "lasso")`` against scikit-learn's ``LassoLars(fit_intercept=False)`` on the dense weighted A:
   times, their ratios and the agreement of the solutions (all measured within one run).
4. *Diagnostic* (``--no-diagnose`` skips it): subnormal entries of the class factors and the time of folding
   and merging them, which explains the cost of the MPI reduction and of the first solve.

Each timed part first waits (up to ``--wait-quiet`` s) until other processes use less than 0.25 cores; the CPU
that other processes used during each part is reported.

Usage::

    python benchmarks/fit.py                 # full run (~20 min on 2 cores), writes benchmarks/results/fit.md
    python benchmarks/fit.py --quick         # 4 frames, orders 8/4/2: smoke run, writes nothing
    python benchmarks/fit.py --workdir /tmp/fitbench --keep   # keep the unpacked data, rows, systems, results.json
    python benchmarks/fit.py --workdir /tmp/fitbench          # again: reuses the saved rows (saves ~2 min)
    python benchmarks/fit.py --report-from /tmp/fitbench/results.json   # rewrite fit.md from the saved figures
    # only the memory runs and the solves (no chimes-lsq builds), the build and diagnostic figures carried over
    # from an earlier run's results.json and marked as older:
    python benchmarks/fit.py --workdir /tmp/fitbench --skip build --no-diagnose --previous OLD/results.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "al_driver_CN"
XYZF = "20.3percN_3.5gcc.xyzf"
BIN = Path(sys.executable).parent  # chimes-lsq and mpiexec live next to the interpreter (.venv/bin)
#: al_driver defaults (gen_ff.py solve_amat) for the row weights.
WEIGHTS = {"force": 1.0, "energy": 0.1, "stress": 250.0}
#: One BLAS / OpenMP / numba thread per process (build runs: one core per rank).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
#: Other processes using less than this many cores count as a quiet machine.
QUIET = 0.25
FRAME_LINE = re.compile(r"rank (\d+): finished frame (\d+) \((\d+) atoms, (\d+) rows\) in ([0-9.]+) s")
FINAL_LINE = re.compile(r"chimes-lsq: (\d+) frames, (\d+) rows, (\d+) columns .*\(([0-9.]+) s\)")


# ============================================================================ machine load
def _busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine since boot (all CPUs, from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            tok = fh.readline().split()
    except OSError:
        return None
    vals = [int(x) for x in tok[1:]]
    busy = vals[0] + vals[1] + vals[2] + sum(vals[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_wait: float, threshold: float = QUIET) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores; return that load."""
    t_end = time.monotonic() + max_wait
    while True:
        b0 = _busy_seconds()
        time.sleep(2.0)
        b1 = _busy_seconds()
        load = None if b0 is None or b1 is None else (b1 - b0) / 2.0
        if load is None or load < threshold or time.monotonic() >= t_end:
            return load
        time.sleep(3.0)


class Meter:
    """Wall time, own CPU time (this process and its reaped children) and the CPU used by everything else."""

    def __enter__(self):
        self.busy0 = _busy_seconds()
        self.t0 = os.times()
        self.w0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        t1 = os.times()
        self.own = sum(
            getattr(t1, k) - getattr(self.t0, k) for k in ("user", "system", "children_user", "children_system")
        )
        busy1 = _busy_seconds()
        self.other = (
            None
            if self.busy0 is None or busy1 is None or self.wall <= 0
            else max(0.0, (busy1 - self.busy0 - self.own) / self.wall)
        )
        return False


def _status_kb(key: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), 0 if unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ============================================================================ data
def prepare(workdir: Path, frames: int, orders: str | None) -> Path:
    """Unpack the example into workdir (NFRAMES, FITSTRS and traj_list set to ``frames``); return fm_setup.in."""
    workdir.mkdir(parents=True, exist_ok=True)
    xyzf = workdir / XYZF
    if not xyzf.exists():
        with gzip.open(DATA / (XYZF + ".gz"), "rb") as src, open(xyzf, "wb") as dst:
            shutil.copyfileobj(src, dst)
    lines = (DATA / "fm_setup.in").read_text().splitlines()
    out = []
    key = None
    for line in lines:
        s = line.strip()
        if s.startswith("#") and s.endswith("#") and len(s) > 2:
            key = s.strip("#").strip()
            out.append(line)
            continue
        if key == "NFRAMES" and s:
            line = f"\t{frames}"
            key = None
        elif key == "FITSTRS" and s:
            line = re.sub(r"ALL\s+\d+", f"ALL {frames}", line)
            key = None
        elif key == "PAIRTYP" and s and orders:
            line = re.sub(r"CHEBYSHEV\s+\d+\s+\d+\s+\d+", "CHEBYSHEV " + orders, line)
            key = None
        elif s:
            key = None
        out.append(line)
    (workdir / "fm_setup.in").write_text("\n".join(out) + "\n")
    tl = (DATA / "traj_list.dat").read_text().splitlines()
    tl[1] = re.sub(r"^\s*\d+", str(frames), tl[1])
    (workdir / "traj_list.dat").write_text("\n".join(tl) + "\n")
    (workdir / "weights.json").write_text(json.dumps(WEIGHTS))
    return workdir / "fm_setup.in"


# ============================================================================ children
def child_rows(spec: dict) -> dict:
    """Build the rows of frames [start, stop) and save one ``.npz`` per frame (A, b, classes, natoms, gas)."""
    from aiida_chimes.chimes.design import DesignBuilder
    from aiida_chimes.chimes.fit_basis import build_basis
    from aiida_chimes.chimes.fit_setup import read_fm_setup

    setup = read_fm_setup(spec["setup"])
    builder = DesignBuilder(build_basis(setup), setup.fit_energy)
    out = Path(spec["out"])
    times = []
    for index, source, frame in setup.iter_frames():
        if index < spec["start"]:
            continue
        if index >= spec["stop"]:
            break
        t0 = time.perf_counter()
        rows = builder.frame_rows(frame, setup.stress_mode(index), setup.fits_energy(index), flags=source.flags)
        times.append(time.perf_counter() - t0)
        gas = np.array([lab.startswith("G_") for lab in rows.labels])
        tmp = out / f"rows_{index:04d}.tmp.npz"
        np.savez(tmp, A=rows.A, b=rows.b, classes=rows.classes, natoms=np.array(rows.natoms), gas=gas)
        tmp.rename(out / f"rows_{index:04d}.npz")
    return {"ncols": builder.ncols, "times": times}


def child_fold(spec: dict) -> dict:
    """Fold the saved rows of ``nframes`` frames ``copies`` times into a FitSystem, one frame file at a time."""
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.weights import row_weights

    rss_import = _status_kb("VmRSS")
    rows = Path(spec["rows"])
    files = [rows / f"rows_{i:04d}.npz" for i in range(spec["nframes"])]
    with np.load(files[0]) as d:
        ncols = d["A"].shape[1]
    system = FitSystem(ncols)
    rss_empty = _status_kb("VmRSS")
    t0 = time.perf_counter()
    nframes = 0
    for _ in range(spec["copies"]):
        for path in files:
            with np.load(path) as d:
                A, b, classes, natoms, gas = d["A"], d["b"], d["classes"], int(d["natoms"]), d["gas"]
            # as build_fit_system: al_driver class weights, gas rows flagged, no per-atom energy stream
            w = row_weights(classes, b, np.full(len(b), natoms), spec["weights"], gas=gas)
            system.add_rows(A, b, classes, w)
            del A
            nframes += 1
    system.finalize()
    t_fold = time.perf_counter() - t0
    nbytes_built = system.nbytes
    from aiida_chimes.chimes.fit_system import STREAMS

    buffers = {}
    for name, st in zip(STREAMS, getattr(system, "_streams", []), strict=False):  # private: informative only
        buf = getattr(st, "buf", None)
        buffers[name] = 0 if buf is None else int(buf.shape[0])
    system.release_buffers()
    out = {
        "copies": spec["copies"],
        "nframes": nframes,
        "nrows": system.nrows_total,
        "ncols": ncols,
        "fold_s": t_fold,
        "nbytes": nbytes_built,
        "nbytes_released": system.nbytes,
        "buffer_rows": buffers,
        "block_rows": int(getattr(system, "block_rows", 0)),
        "rss_import_kb": rss_import,
        "rss_empty_system_kb": rss_empty,
        "vmhwm_kb": _status_kb("VmHWM"),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if spec.get("save"):
        system.save(spec["save"])
    return out


def run_child(spec: dict, env_extra: dict | None = None, timeout: float = 3600.0) -> dict:
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    env = dict(os.environ)
    env.update(env_extra or {})
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    with Meter() as m:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"child {spec['task']} exited {proc.returncode}: {proc.stderr[-2000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out.update(process_wall_s=m.wall, other_load=m.other, parent_maxrss_kb=parent_peak)
            return out
    raise RuntimeError(f"child {spec['task']} printed no result")


# ============================================================================ chimes-lsq runs
def run_measured(cmd: list[str], cwd: Path, env_extra: dict, tag: str) -> dict:
    """Run a command, stderr to a file; wall time, peak RSS (largest process of the tree) and other load."""
    env = dict(os.environ)
    env.update(env_extra)
    err_path = cwd / f"{tag}.stderr"
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    busy0 = _busy_seconds()
    t0 = time.perf_counter()
    with open(err_path, "w") as err, open(cwd / f"{tag}.stdout", "w") as out:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    busy1 = _busy_seconds()
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = ru.ru_utime + ru.ru_stime
    text = err_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{text[-3000:]}")
    frames = [(int(r), int(i), int(na), int(nr), float(t)) for r, i, na, nr, t in FRAME_LINE.findall(text)]
    final = FINAL_LINE.search(text)
    return {
        "cmd": cmd,
        "wall_s": wall,
        "cpu_s": cpu,
        "maxrss_kb": ru.ru_maxrss,
        "parent_maxrss_kb": parent_peak,
        "other_load": None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - cpu) / wall),
        "frames": frames,
        "internal_wall_s": float(final.group(4)) if final else None,
        "nrows": int(final.group(2)) if final else None,
        "ncols": int(final.group(3)) if final else None,
    }


def build_runs(args, work: Path, setup: Path) -> dict:
    lsq = str(BIN / "chimes-lsq")
    mpiexec = str(BIN / "mpiexec") if (BIN / "mpiexec").exists() else "mpiexec"
    out = {}
    for ranks in args.ranks:
        cmd = [lsq, setup.name, "--compact-only", "--weights", "weights.json", "-o", f"system_{ranks}rank.npz"]
        if ranks > 1:
            cmd = [mpiexec, "-n", str(ranks)] + cmd
        best = None
        for attempt in range(1 + args.retries):
            load = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
            if load is not None and load >= QUIET:
                print(f"    warning: other processes use {load:.2f} cores", flush=True)
            print(f"[build] {ranks} rank(s){f' (retry {attempt})' if attempt else ''}: {shlex.join(cmd)}", flush=True)
            r = run_measured(cmd, work, ONE_THREAD, f"build_{ranks}rank")
            r["load_before"] = load
            ft = [f[4] for f in r["frames"]]
            print(
                f"    wall {r['wall_s']:.1f} s, {len(ft)} frames, mean {statistics.mean(ft):.2f} s/frame, "
                f"peak RSS {r['maxrss_kb'] / 1024:.0f} MiB, other load {fmt_load(r['other_load'])}",
                flush=True,
            )
            if best is None or (r["other_load"] or 0) < (best["other_load"] or 0):
                best = r
            if best["other_load"] is None or best["other_load"] < QUIET:
                break
        out[ranks] = best
    return out


def compare_systems(paths: list[Path]) -> float:
    """Largest relative difference of the Gram quadratic forms of saved systems (in a child process, so that
    this process stays small: a child's ``ru_maxrss`` starts from its parent's peak RSS at the spawn)."""
    return run_child({"task": "compare", "paths": [str(p) for p in paths]})["worst"]


def child_compare(spec: dict, nvec: int = 8) -> dict:
    """Largest relative difference of the quadratic forms ||F_c v||^2 (= v^T Gram_c v) over classes and random v."""
    from aiida_chimes.chimes.fit_system import CLASSES, FitSystem

    systems = [FitSystem.load(p) for p in spec["paths"]]
    rng = np.random.default_rng(0)
    K = systems[0].ncols + 2
    V = rng.standard_normal((K, nvec))
    worst = 0.0
    for c in CLASSES:
        q = [np.einsum("ij,ij->j", s.factor(c, True) @ V, s.factor(c, True) @ V) for s in systems]
        for other in q[1:]:
            worst = max(worst, float(np.max(np.abs(other - q[0]) / np.abs(q[0]))))
    return {"worst": worst}


def child_diagnose(spec: dict) -> dict:
    """Cost of combining class factors: per class of the saved system, its rows, the non-zero rows and the
    subnormal entries of its weighted factor, and the time of merging two copies of the class (what rank 0 does
    for every class in the MPI reduction, ``FitSystem.merge``); then the time of ``FitSystem.factor(None)``
    (what the first solve does).  Run with the thread settings of the caller."""
    from aiida_chimes.chimes.fit_system import CLASSES, FitSystem

    system = FitSystem.load(spec["path"])
    tiny = np.finfo(np.float64).tiny
    out = {"classes": {}}
    for c in CLASSES:
        F = system.factor(c, True)
        out["classes"][c] = {
            "nrows": int(system.nrows[c]),
            "nonzero_rows": int(np.count_nonzero(np.any(F != 0.0, axis=1))),
            "subnormal": int(np.count_nonzero((F != 0) & (np.abs(F) < tiny))),
        }
        del F
    for i, c in enumerate(CLASSES):
        a, b = FitSystem.load(spec["path"]), FitSystem.load(spec["path"])
        t0 = time.perf_counter()
        a._streams[i].merge(b._streams[i])  # private: the per-class step of FitSystem.merge (informative only)
        out["classes"][c]["merge_copies_s"] = time.perf_counter() - t0
        del a, b
    system = FitSystem.load(spec["path"])
    t0 = time.perf_counter()
    system.factor(None, True)
    out["combine_s"] = time.perf_counter() - t0
    return out


# ============================================================================ rows and memory
def build_rows(args, work: Path, setup: Path, nframes: int) -> dict:
    rows = work / "rows"
    rows.mkdir(exist_ok=True)
    if all((rows / f"rows_{i:04d}.npz").exists() for i in range(nframes)):
        print("[rows] reusing the saved rows", flush=True)
        return {"reused": True}
    nproc = max(1, min(2, nframes))
    bounds = [round(k * nframes / nproc) for k in range(nproc + 1)]
    print(f"[rows] building the rows of {nframes} frames in {nproc} parallel 1-thread children ...", flush=True)
    env = dict(os.environ)
    env.update(ONE_THREAD)
    procs = []
    with Meter() as m:
        for k in range(nproc):
            spec = {"task": "rows", "setup": str(setup), "out": str(rows), "start": bounds[k], "stop": bounds[k + 1]}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        results = []
        for p in procs:
            so, se = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"rows child exited {p.returncode}: {se[-2000:]}")
            results.append(json.loads([ln for ln in so.splitlines() if ln.startswith("RESULT ")][-1][7:]))
    times = [t for r in results for t in r["times"]]
    print(f"    {m.wall:.0f} s, {statistics.mean(times):.1f} s/frame (2 children at once)", flush=True)
    return {"reused": False, "wall_s": m.wall, "times": times}


def memory_runs(args, work: Path, nframes: int) -> dict:
    out = {}
    for copies in (1, args.replicate):
        load = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
        print(
            f"[memory] fold {nframes} frames x {copies} = {nframes * copies} frames in a fresh process ...", flush=True
        )
        spec = {
            "task": "fold",
            "rows": str(work / "rows"),
            "nframes": nframes,
            "copies": copies,
            "weights": WEIGHTS,
            "save": str(work / "system_fold.npz") if copies == 1 else None,
        }
        r = run_child(spec)
        r["load_before"] = load
        r["ru_parent"] = r["parent_maxrss_kb"]
        print(
            f"    fold {r['fold_s']:.1f} s, nbytes {r['nbytes'] / 2**20:.0f} MiB, "
            f"peak RSS {r['maxrss_kb'] / 1024:.0f} MiB",
            flush=True,
        )
        out[copies] = r
    return out


# ============================================================================ solves
def dense_weighted(work: Path, nframes: int):
    """The dense weighted A and b of the saved rows (al_driver weights), as chimes_lsq.py would hold them."""
    from aiida_chimes.chimes.weights import row_weights

    files = [work / "rows" / f"rows_{i:04d}.npz" for i in range(nframes)]
    sizes = []
    for p in files:
        with np.load(p) as d:
            sizes.append(d["b"].shape[0])
            M = d["A"].shape[1]
    Aw = np.empty((sum(sizes), M))
    bw = np.empty(sum(sizes))
    pos = 0
    for p, n in zip(files, sizes, strict=True):
        with np.load(p) as d:
            w = row_weights(d["classes"], d["b"], np.full(n, int(d["natoms"])), WEIGHTS, gas=d["gas"])
            Aw[pos : pos + n] = d["A"] * w[:, None]
            bw[pos : pos + n] = d["b"] * w
        pos += n
    return Aw, bw


def timed(fn, repeat: int = 1):
    """(result of the last call, list of Meter) for ``repeat`` calls."""
    meters = []
    res = None
    for _ in range(repeat):
        with Meter() as m:
            res = fn()
        meters.append(m)
    return res, meters


def best(meters) -> Meter:
    return min(meters, key=lambda m: m.wall)


def other_load(meters, min_wall: float = 1.0):
    """CPU used by other processes over all the calls, in cores; None when they took under ``min_wall`` s
    (the /proc/stat clock ticks, 10 ms, make shorter windows meaningless)."""
    wall = sum(m.wall for m in meters)
    if wall < min_wall or any(m.other is None for m in meters):
        return None
    return sum(m.other * m.wall for m in meters) / wall


def warm_solvers():
    """Load (or compile) the numba kernels of the solvers on a tiny system, outside the timed calls."""
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.solvers import solve

    rng = np.random.default_rng(1)
    s = FitSystem(12)
    s.add_rows(rng.standard_normal((60, 12)), rng.standard_normal(60), 0)
    s.add_rows(rng.standard_normal((3, 12)), rng.standard_normal(3), 1, 0.1)  # a few-row class
    s.add_rows(rng.standard_normal((20, 12)), rng.standard_normal(20), 2, 250.0)
    for alg in ("svd", "lasso", "lassolars", "lars"):
        solve(s, alg, alpha=1e-3)


def solve_runs(args, work: Path, system_path: Path, nframes: int) -> dict:
    import scipy
    import scipy.linalg
    import sklearn
    from sklearn.linear_model import LassoLars

    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.solvers import solve

    out = {"scipy": scipy.__version__, "sklearn": sklearn.__version__, "system": system_path.name}
    warm_solvers()
    Aw, bw = dense_weighted(work, nframes)
    N, M = Aw.shape
    out.update(N=N, M=M, dense_mb=Aw.nbytes / 1e6)

    def fresh():
        return FitSystem.load(system_path)

    def objective(x, alpha):
        r = Aw @ x - bw
        return 0.5 * float(r @ r) / N + alpha * float(np.abs(x).sum())

    def wrss(x):
        r = Aw @ x - bw
        return float(r @ r)

    def rel(a, b):
        nb = float(np.linalg.norm(b))
        return float(np.linalg.norm(a - b)) / nb if nb else float(np.linalg.norm(a))

    def quiet():
        if args.wait_quiet > 0:
            wait_for_quiet(args.wait_quiet)

    # ---------------------------------------------------------------- load, combined triangle
    quiet()
    _, m_load = timed(fresh)
    prepared = fresh()
    print("[solve] combined weighted triangle (first call of any solver) ...", flush=True)
    _, m_prep = timed(lambda: prepared.R(None, weighted=True))
    print(f"    {m_prep[0].wall:.2f} s (load of the .npz: {m_load[0].wall:.2f} s)", flush=True)
    out["load_s"] = m_load[0].wall
    out["prep_s"] = m_prep[0].wall
    out["prep_other"] = other_load(m_prep)

    # ---------------------------------------------------------------- SVD
    quiet()
    print("[solve] svd (compact: fresh system, then prepared) ...", flush=True)
    loaded = fresh()  # loaded outside the timing (as the report says)
    svd_res, m_svd = timed(lambda s=loaded: solve(s, "svd", eps=args.eps))
    del loaded
    svd_warm, m_svd_w = timed(lambda: solve(prepared, "svd", eps=args.eps), args.repeat)
    print(
        f"    {m_svd[0].wall:.2f} s fresh, {best(m_svd_w).wall:.2f} s prepared, rank {svd_res.info['rank']}", flush=True
    )
    print("[solve] scipy.linalg.lstsq (dense, gelsd) ...", flush=True)
    (x_ls, _, rank_ls, _), m_ls = timed(
        lambda: scipy.linalg.lstsq(Aw, bw, cond=args.eps, check_finite=False, lapack_driver="gelsd")
    )
    print(f"    {m_ls[0].wall:.2f} s, rank {rank_ls}", flush=True)
    out["svd"] = {
        "eps": args.eps,
        "cold_s": m_svd[0].wall,
        "warm_s": best(m_svd_w).wall,
        "ours_other": other_load(m_svd + m_svd_w),
        "scipy_s": m_ls[0].wall,
        "scipy_other": other_load(m_ls),
        "rank_ours": int(svd_res.info["rank"]),
        "rank_scipy": int(rank_ls),
        "x_reldiff": rel(svd_res.x, x_ls),
        "x_reldiff_warm_cold": rel(svd_warm.x, svd_res.x),
        "wrss_ours": wrss(svd_res.x),
        "wrss_scipy": wrss(x_ls),
        "wrss_compact": float(prepared.residual_sumsq(svd_res.x, weighted=True)),
        "rmse_ours": svd_res.rmse,
    }

    # ---------------------------------------------------------------- alpha
    alpha_max = float(np.max(np.abs(prepared.gram(None, True)[1]))) / N
    scan = []
    if args.alpha is not None:
        alpha = args.alpha
    else:
        alpha = None
        for ratio in args.alpha_ratios:
            a = ratio * alpha_max
            r, ms = timed(lambda a=a: solve(prepared, "lassolars", alpha=a))
            scan.append(
                {
                    "ratio": ratio,
                    "alpha": a,
                    "nonzero": r.nonzero,
                    "active": r.info["active"],
                    "iterations": r.info["iterations"],
                    "s": ms[0].wall,
                }
            )
            print(f"[alpha] {a:.4g} (= {ratio:g} alpha_max): {r.nonzero} non-zero, {ms[0].wall:.2f} s", flush=True)
            if r.nonzero >= args.target_nonzero:
                alpha = a
                break
        if alpha is None:
            alpha = scan[-1]["alpha"]
    out["alpha"] = alpha
    out["alpha_max"] = alpha_max
    out["alpha_scan"] = scan

    # ---------------------------------------------------------------- LASSO
    quiet()
    print(f"[solve] lassolars (compact: fresh system, then prepared), alpha {alpha:.4g} ...", flush=True)
    m_ll = []
    for _ in range(args.repeat):  # each on a newly loaded system (loaded outside the timing)
        loaded = fresh()
        ll_res, m = timed(lambda s=loaded: solve(s, "lassolars", alpha=alpha))
        m_ll += m
        del loaded
    ll_warm, m_ll_w = timed(lambda: solve(prepared, "lassolars", alpha=alpha), args.repeat)
    print(
        f"    {best(m_ll).wall:.2f} s fresh, {best(m_ll_w).wall:.2f} s prepared, {ll_res.nonzero} non-zero, "
        f"{ll_res.info['iterations']} steps (fresh {', '.join(f'{m.wall:.2f}' for m in m_ll)}; prepared "
        f"{', '.join(f'{m.wall:.2f}' for m in m_ll_w)})",
        flush=True,
    )

    # the Gram rows formed anew on the prepared system: the same warm process state as LassoLars's repeated calls
    # (only the cached Gram rows are dropped, a private key; the combined triangle stays for `lasso` below)
    def reformed():
        prepared._cache.pop(("gram_rows", False), None)
        prepared._cache.pop(("gram", False), None)  # the whole matrix, as code before 0aff794 kept it
        return solve(prepared, "lassolars", alpha=alpha)

    quiet()
    ll_ref, m_ll_r = timed(reformed, args.repeat)
    print(
        f"    {best(m_ll_r).wall:.2f} s with the Gram rows formed anew in this process "
        f"({', '.join(f'{m.wall:.2f}' for m in m_ll_r)})",
        flush=True,
    )
    print(f"[solve] lasso (compact, prepared, coordinate descent, max_iter {args.cd_max_iter}) ...", flush=True)
    cd_res, m_cd = timed(lambda: solve(prepared, "lasso", alpha=alpha, max_iter=args.cd_max_iter))
    print(
        f"    {m_cd[0].wall:.2f} s, {cd_res.nonzero} non-zero, {cd_res.info['iterations']} sweeps, "
        f"converged {cd_res.info['converged']}",
        flush=True,
    )
    quiet()
    print(f"[solve] sklearn LassoLars (dense, max_iter {args.sk_max_iter}) ...", flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = LassoLars(alpha=alpha, fit_intercept=False, max_iter=args.sk_max_iter)
        _, m_sk = timed(lambda: model.fit(Aw, bw), args.repeat)
    x_sk = np.asarray(model.coef_, dtype=np.float64).ravel()
    n_iter_sk = int(np.max(model.n_iter_))
    print(
        f"    {best(m_sk).wall:.2f} s ({', '.join(f'{m.wall:.2f}' for m in m_sk)}), "
        f"{np.count_nonzero(np.abs(x_sk) > 1e-5)} non-zero, {n_iter_sk} steps, {len(caught)} warning(s)",
        flush=True,
    )
    quiet()
    print("[solve] sklearn LassoLars (dense), each call right after a system load (as a fresh compact call) ...")
    m_sk_load = []
    for _ in range(args.repeat):
        loaded = fresh()
        _, m = timed(lambda: model.fit(Aw, bw))
        m_sk_load += m
        del loaded
    print(f"    {best(m_sk_load).wall:.2f} s ({', '.join(f'{m.wall:.2f}' for m in m_sk_load)})", flush=True)
    G_dense, m_gram = timed(lambda: Aw.T @ Aw)
    print(f"[solve] dense Gram A^T A alone: {m_gram[0].wall:.2f} s", flush=True)
    quiet()
    print("[solve] sklearn LassoLars (dense, Gram matrix given: precompute=A^T A) ...", flush=True)
    model_pre = LassoLars(alpha=alpha, fit_intercept=False, max_iter=args.sk_max_iter, precompute=G_dense)
    _, m_skp = timed(lambda: model_pre.fit(Aw, bw), args.repeat)
    x_skp = np.asarray(model_pre.coef_, dtype=np.float64).ravel()
    del G_dense
    print(
        f"    {best(m_skp).wall:.2f} s ({', '.join(f'{m.wall:.2f}' for m in m_skp)}), same x as without: "
        f"{rel(x_skp, x_sk):.1e}",
        flush=True,
    )
    from aiida_chimes.chimes.gram import weighted_gram

    quiet()
    _, m_cg = timed(lambda: weighted_gram(prepared, False), args.repeat)
    compact_gram_s = best(m_cg).wall
    print(f"[solve] compact Gram matrix from the class factors alone: {compact_gram_s:.2f} s", flush=True)
    kinds = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:120]}" for w in caught})
    out["lasso"] = {
        "alpha": alpha,
        "cold_s": best(m_ll).wall,
        "warm_s": best(m_ll_w).wall,
        "cold_all_s": [m.wall for m in m_ll],
        "gram_rows_formed": ll_res.info.get("gram_rows_formed"),
        "gram_row_batches": ll_res.info.get("gram_row_batches"),
        "warm_all_s": [m.wall for m in m_ll_w],
        "sklearn_all_s": [m.wall for m in m_sk],
        "reformed_s": best(m_ll_r).wall,
        "reformed_all_s": [m.wall for m in m_ll_r],
        "x_reldiff_reformed": rel(ll_ref.x, ll_res.x),
        "sklearn_after_load_s": best(m_sk_load).wall,
        "sklearn_after_load_all_s": [m.wall for m in m_sk_load],
        "lassolars_other": other_load(m_ll + m_ll_w),
        "cd_warm_s": m_cd[0].wall,
        "cd_other": other_load(m_cd),
        "sklearn_s": best(m_sk).wall,
        "sklearn_pre_s": best(m_skp).wall,
        "sklearn_pre_all_s": [m.wall for m in m_skp],
        "x_reldiff_sklearn_pre": rel(x_skp, x_sk),
        "sklearn_other": other_load(m_sk),
        "gram_s": m_gram[0].wall,
        "compact_gram_s": compact_gram_s,
        "degenerate_lassolars": int(ll_res.info.get("degenerate_skipped", 0)),
        "nonzero_lassolars": ll_res.nonzero,
        "nonzero_cd": cd_res.nonzero,
        "nonzero_sklearn": int(np.count_nonzero(np.abs(x_sk) > 1e-5)),
        "active_lassolars": int(ll_res.info["active"]),
        "active_sklearn": int(np.count_nonzero(x_sk)),
        "steps_lassolars": int(ll_res.info["iterations"]),
        "drops_lassolars": int(ll_res.info["drops"]),
        "converged_lassolars": bool(ll_res.info["converged"]),
        "steps_sklearn": n_iter_sk,
        "sklearn_capped": n_iter_sk >= args.sk_max_iter,
        "sweeps_cd": int(cd_res.info["iterations"]),
        "converged_cd": bool(cd_res.info["converged"]),
        "gap_cd": float(cd_res.info["duality_gap"]),
        "x_reldiff_lassolars_sklearn": rel(ll_res.x, x_sk),
        "x_reldiff_warm_cold": rel(ll_warm.x, ll_res.x),
        "x_reldiff_cd_sklearn": rel(cd_res.x, x_sk),
        "support_diff_lassolars_sklearn": int(np.count_nonzero((ll_res.x != 0) != (x_sk != 0))),
        "obj_lassolars": objective(ll_res.x, alpha),
        "obj_cd": objective(cd_res.x, alpha),
        "obj_sklearn": objective(x_sk, alpha),
        "sklearn_warnings": kinds,
        "sklearn_nwarnings": len(caught),
    }
    return out


# ============================================================================ report
def code_state() -> str:
    """Commit and local changes of the package being measured (another session may change it meanwhile)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "aiida_chimes"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout
        digest = ""
        if dirty.strip():
            diff = subprocess.run(
                ["git", "diff", "HEAD", "--", "aiida_chimes"], cwd=ROOT, capture_output=True, timeout=10
            ).stdout
            import hashlib

            digest = f" + uncommitted changes to aiida_chimes (diff sha1 {hashlib.sha1(diff).hexdigest()[:10]})"
        return (head or "?") + digest
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_info() -> dict:
    fields = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        mem = next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        mem = f"{int(mem) / 2**20:.1f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    try:
        mpi = subprocess.run([str(BIN / "mpiexec"), "--version"], capture_output=True, text=True, timeout=10).stdout
        mpi = next((ln.split(":", 1)[1].strip() for ln in mpi.splitlines() if "Version:" in ln), "?")
    except (OSError, subprocess.SubprocessError):
        mpi = "?"
    import numba

    return {
        "cpu": fields.get("Model name", platform.processor() or "?"),
        "cpus": fields.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "cores_per_socket": fields.get("Core(s) per socket", "?"),
        "memory": mem,
        "hypervisor": fields.get("Hypervisor vendor"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "mpich": mpi,
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y"),
    }


def fmt_load(x):
    return "-" if x is None else f"{x:.2f}"


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def older_note(older: dict | None, part: str) -> str:
    """A line saying that a section's figures come from an earlier run (``--previous``), or ''."""
    if not older or part not in older.get("parts", []):
        return ""
    return (
        f"**Older figures, not re-measured in the latest run**: from the run of {older['date']} "
        f"(`{older['command']}`, code {older['code']}).\n"
    )


def build_report(args, info, builds, same, rows, mem, diag, solves, command, disturbed, older=None) -> str:
    L = ["# Fit benchmark", ""]
    L.append(
        "ChIMES fit of the C/N hierarchical example of the ChIMES active-learning driver (al_driver "
        "`examples/hierarch_fit`, ALC-0: 20 frames of 216 atoms, `fm_setup.in` with Chebyshev orders 25/10/4, "
        "C-C and N-N interactions excluded, energies and all stresses fitted; `benchmarks/data/al_driver_CN`), "
        "produced by `benchmarks/fit.py` (the figures below are from an actual run, written by the script).  "
        f"Rows weighted with the al_driver defaults (force {WEIGHTS['force']:g}, energy {WEIGHTS['energy']:g}, "
        f"stress {WEIGHTS['stress']:g}).\n"
    )
    goals = []

    # ------------------------------------------------------------ build
    if builds:
        L.append(f"## Build (`chimes-lsq`, {len(next(iter(builds.values()))['frames'])} frames)\n")
        if older_note(older, "build"):
            L.append(older_note(older, "build"))
        L.append(
            "Command (in the unpacked data folder), one BLAS/OpenMP/numba thread per rank "
            f"(`{' '.join(f'{k}={v}' for k, v in ONE_THREAD.items())}`):\n"
        )
        for ranks, r in builds.items():
            cmd = [Path(c).name if c.startswith(str(BIN)) else c for c in r["cmd"]]
            L.append(f"- {ranks} rank(s): `{shlex.join(cmd)}`")
        L.append("")
        L.append(
            "| ranks | frames | rows | columns | s/frame mean | min | max | first frame (s) | Σ frame times / "
            "rank (s) | build wall, internal (s) | of which not frames (s) | process wall (s) | speed-up (process "
            "wall) | peak RSS per process (MiB) | other load (cores) |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        base = builds.get(1) or next(iter(builds.values()))
        for ranks, r in builds.items():
            ft = [f[4] for f in r["frames"]]
            per_rank = {}
            for f in r["frames"]:
                per_rank[f[0]] = per_rank.get(f[0], 0.0) + f[4]
            firsts = [min((f for f in r["frames"] if f[0] == rk), key=lambda f: f[1])[4] for rk in sorted(per_rank)]
            L.append(
                f"| {ranks} | {len(ft)} | {r['nrows']} | {r['ncols']} | {statistics.mean(ft):.2f} | {min(ft):.2f} | "
                f"{max(ft):.2f} | {', '.join(f'{x:.2f}' for x in firsts)} | "
                f"{', '.join(f'{per_rank[k]:.1f}' for k in sorted(per_rank))} | {r['internal_wall_s']:.1f} | "
                f"{r['internal_wall_s'] - max(per_rank.values()):.1f} | {r['wall_s']:.1f} | "
                f"{base['wall_s'] / r['wall_s']:.2f} | {mib(r['maxrss_kb'])} | {fmt_load(r['other_load'])} |"
            )
        L.append("")
        L.append(
            "Frame times are those printed by `chimes-lsq` (design rows, weights and the fold into the compact "
            "system of one frame); 'first frame' is each rank's first (it includes loading the numba cache).  "
            "'build wall, internal' is the time `chimes-lsq` reports for `build_fit_system` (frames, MPI reduction); "
            "'of which not frames' is that minus the largest per-rank sum of frame times (basis set-up, reading the "
            "frames, the MPI reduction of the ranks' systems); 'process wall' adds the interpreter start-up, "
            "imports, reading the setup, `mpiexec` and writing `fit_system.npz`.  Peak RSS: `ru_maxrss` of the "
            "waited-for process tree, i.e. the largest single process (under `mpiexec`, one rank).  'other load': "
            "CPU used by other processes during the run, in cores (from /proc/stat).  The numba kernels were "
            "loaded from the on-disk cache (a 1-frame warm-up run with low orders precedes the timed runs).\n"
        )
        parent = max(r.get("parent_maxrss_kb", 0) for r in builds.values())
        L.append(
            f"This script's own peak RSS when it started the builds was {mib(parent)} MiB (a child's "
            "`ru_maxrss` cannot be below its parent's peak at the spawn), so the figures above are the "
            "builds' own.\n"
        )
        if same is not None:
            L.append(
                f"The {' and '.join(f'{k}-rank' for k in builds)} systems agree: largest relative difference of "
                f"the Gram quadratic forms v^T (F_c^T F_c) v (8 random v, every class) {same:.1e}.\n"
            )
        if 1 in builds and 2 in builds:
            sp = builds[1]["wall_s"] / builds[2]["wall_s"]
            sp_int = builds[1]["internal_wall_s"] / builds[2]["internal_wall_s"]
            r2 = builds[2]
            frames2 = max(sum(f[4] for f in r2["frames"] if f[0] == rk) for rk in {f[0] for f in r2["frames"]})
            frames1 = sum(f[4] for f in builds[1]["frames"])
            serial1 = builds[1]["wall_s"] - frames1
            serial2 = r2["wall_s"] - frames2
            why = (
                f"the frames split well ({frames1:.0f} s of frame work on 1 rank, at most {frames2:.0f} s per "
                f"rank on 2: {frames1 / frames2:.2f}x), but what is not frame work does not shrink: "
                f"{serial1:.0f} s of the 1-rank process wall (start-up, imports, set-up, the final fold of "
                f"buffered rows, writing the .npz) against {serial2:.0f} s on 2 ranks, which add the reduction "
                f"of the ranks' systems onto rank 0 ({r2['internal_wall_s'] - frames2:.0f} s of the internal "
                "wall is outside the frames: packing and sending the K x K factors of every class and merging "
                "them on one core; see the diagnostic section for the merges).  Had the 2-rank run added nothing "
                "to the 1-rank non-frame time, the speed-up would have been "
                f"{builds[1]['wall_s'] / (frames2 + serial1):.2f}x.  "
                f"The 2-rank peak RSS per process is also {mib(r2['maxrss_kb'])} MiB against "
                f"{mib(builds[1]['maxrss_kb'])} MiB on 1 rank (packed, received and unpacked copies of the "
                "system during the reduction)."
            )
            goals.append(
                (
                    "2 ranks at least 1.8x faster than 1",
                    sp >= 1.8,
                    f"{sp:.2f}x on the process wall ({builds[1]['wall_s']:.0f} s -> "
                    f"{builds[2]['wall_s']:.0f} s), {sp_int:.2f}x on the internal build wall"
                    + (f" (older run, {older['date']})" if older_note(older, "build") else ""),
                    why,
                )
            )

    # ------------------------------------------------------------ memory
    if mem:
        one, many = mem[1], mem[args.replicate]
        L.append(f"## Peak memory: {one['nframes']} vs {many['nframes']} frames\n")
        L.append(
            f"The rows of the {one['nframes']} frames were built once and saved one file per frame; a fresh "
            f"process then reads them one frame at a time, weights them and folds them into a `FitSystem` "
            f"(as `build_fit_system` does; OpenBLAS with its default 2 threads).  **The {many['nframes']}-frame "
            f"run replicates the {one['nframes']} frames' rows {args.replicate} times** (building that many "
            f"distinct frames would take {args.replicate} times as long; the per-frame design work does not "
            "depend on the number of frames, the point is that the compact system does not grow with the rows).\n"
        )
        L.append(
            "| frames | rows | fold time (s) | `system.nbytes` at the end (MiB) | after `release_buffers` (MiB) "
            "| row buffers force / energy / stress (rows) | RSS after imports (MiB) | peak RSS, VmHWM (MiB) | "
            "other load (cores) |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in (one, many):
            buf = r.get("buffer_rows", {})
            L.append(
                f"| {r['nframes']} | {r['nrows']} | {r['fold_s']:.1f} | {r['nbytes'] / 2**20:.1f} | "
                f"{r['nbytes_released'] / 2**20:.1f} | "
                f"{' / '.join(str(buf.get(c, '?')) for c in ('force', 'energy', 'stress'))} | "
                f"{mib(r['rss_import_kb'])} | {mib(r['vmhwm_kb'])} | {fmt_load(r['other_load'])} |"
            )
        growth = many["vmhwm_kb"] / one["vmhwm_kb"] - 1.0

        def bufs(r):
            return " / ".join(str(r.get("buffer_rows", {}).get(c, "?")) for c in ("energy", "stress"))

        dense = one["nrows"] * one["ncols"] * 8
        K = one["ncols"] + 2
        block = int(one.get("block_rows") or 0)
        L.append("")
        L.append(
            f"Peak RSS {many['nframes']} / {one['nframes']} frames: {many['vmhwm_kb'] / one['vmhwm_kb']:.3f} "
            f"({100 * growth:+.1f} %, {(many['vmhwm_kb'] - one['vmhwm_kb']) / 1024:+.0f} MiB); `nbytes` "
            f"{many['nbytes'] / one['nbytes']:.3f}.  For comparison, the dense A would be {dense / 2**20:.0f} MiB "
            f"for {one['nframes']} frames and {args.replicate * dense / 2**30:.1f} GiB for {many['nframes']}.  "
            f"Peak RSS is VmHWM of the child's own address space (`ru_maxrss` of a child also counts its "
            f"parent's peak at the spawn: here {mib(one['ru_parent'])} MiB vs {mib(one['maxrss_kb'])} / "
            f"{mib(many['maxrss_kb'])} MiB).  Row buffers: each class folds its buffered rows whenever "
            f"`block_rows` = {block if block else '?'} of them have gathered (and at the end), so a buffer never "
            f"exceeds {block if block else '?'} x K doubles ({block * K * 8 / 2**20:.1f} MiB); every other array "
            "is K x K (K = M + 2), independent of the frames.  "
            f"The real {one['nframes']}-frame 1-rank `chimes-lsq` build "
            + ("of the older run " if older_note(older, "build") else "above ")
            + f"peaked at {mib(builds[1]['maxrss_kb']) if 1 in builds else '(not run)'} MiB (1 BLAS thread; it "
            "also holds the numba design kernels and one frame's neighbour/cluster tables, and writes the "
            "compressed `.npz`).\n"
        )
        old_mem = (older or {}).get("mem") or {}
        o1, o2 = old_mem.get("1"), old_mem.get(str(args.replicate))
        if o1 and o2:
            ob = o1.get("block_rows") or (o1["ncols"] + 2)
            L.append(
                f"Older figures, for comparison (run of {older['date']}, code {older['code']}, row buffers "
                f"folded every {ob} rows): VmHWM {mib(o1['vmhwm_kb'])} MiB ({o1['nframes']} frames) and "
                f"{mib(o2['vmhwm_kb'])} MiB ({o2['nframes']} frames), "
                f"{100 * (o2['vmhwm_kb'] / o1['vmhwm_kb'] - 1):+.1f} %; `nbytes` {o1['nbytes'] / 2**20:.1f} -> "
                f"{o2['nbytes'] / 2**20:.1f} MiB.\n"
            )
        if "fold_vs_build" in mem:
            L.append(
                f"The folded {one['nframes']}-frame system agrees with the 1-rank `chimes-lsq` system: "
                f"largest relative difference of the Gram quadratic forms {mem['fold_vs_build']:.1e}.\n"
            )
        goals.append(
            (
                f"peak memory for {many['nframes']} frames within 10 % of that for {one['nframes']}",
                abs(growth) <= 0.10,
                f"{100 * growth:+.1f} % (VmHWM {mib(one['vmhwm_kb'])} -> "
                f"{mib(many['vmhwm_kb'])} MiB; the dense A would grow by "
                f"{(args.replicate - 1) * dense / 2**30:.1f} GiB)",
                f"the peak grew by {(many['vmhwm_kb'] - one['vmhwm_kb']) / 1024:.0f} MiB while the arrays "
                f"the system holds grew by {(many['nbytes'] - one['nbytes']) / 2**20:.0f} MiB (`nbytes`; row "
                f"buffers energy / stress {bufs(one)} rows at {one['nframes']} frames, {bufs(many)} at "
                f"{many['nframes']}); the rest is transient (frame arrays, LAPACK work space).",
            )
        )

    # ------------------------------------------------------------ diagnostic
    if diag:
        L.append("## Combining class factors (diagnostic)\n")
        if older_note(older, "diagnose"):
            L.append(older_note(older, "diagnose"))
        L.append(
            f"Per class of the saved {args.frames}-frame system (1-rank build): its rows, the non-zero rows and "
            "the subnormal (|v| < 2.2e-308) entries of its weighted K x K factor, and the time of merging two "
            "copies of the class (the per-class step of `FitSystem.merge`, what rank 0 does for every class in "
            "the MPI reduction); then the time of `FitSystem.factor(None)`, which combines the three classes "
            "(what the first solve on a loaded system does).  Run in a child with 1 BLAS thread (as the ranks).\n"
        )
        L.append("| class | rows | non-zero factor rows | subnormal entries | merge two copies (s) |")
        L.append("|---|---|---|---|---|")
        for c, d in diag["classes"].items():
            merge = f"{d['merge_copies_s']:.2f}" if "merge_copies_s" in d else "-"
            L.append(f"| {c} | {d['nrows']} | {d.get('nonzero_rows', '-')} | {d['subnormal']:,} | {merge} |")
        L.append("")
        if "combine_s" in diag:
            L.append(f"`FitSystem.factor(None)` (all classes, 1 BLAS thread): {diag['combine_s']:.2f} s.\n")

    # ------------------------------------------------------------ solves
    if solves:
        s, la = solves["svd"], solves["lasso"]
        L.append(f"## Solves ({args.frames}-frame weighted system, both cores)\n")
        L.append(
            f"Weighted system: N = {solves['N']} rows, M = {solves['M']} columns (dense weighted A: "
            f"{solves['dense_mb']:.0f} MB).  Compact solvers: `aiida_chimes.chimes.solvers.solve` on the "
            + (
                "system written by the 1-rank `chimes-lsq` run"
                if solves.get("system", "system_1rank.npz") == "system_1rank.npz"
                else f"system folded from the saved rows (`{solves['system']}`)"
            )
            + ".  *fresh*: a freshly loaded system (the load of the "
            f".npz, {solves['load_s']:.1f} s, not timed), i.e. what `chimes-solve` does: the first `svd` (or "
            "`ridge`, `lasso`) solve also combines the three class factors into the weighted triangle of A "
            "(cached afterwards); *prepared*: the same call on a system whose triangle is already cached "
            "(solver proper plus the quality numbers, RMSE per class and BIC).  Combining the factors alone: "
            f"{solves['prep_s']:.1f} s.  "
            + (
                (
                    "`lassolars` does not use that triangle: its first call forms, from the class factors, only the "
                    "rows of the Gram matrix A^T A that the path needs, in batches (BLAS-3 products on the force "
                    "triangle, the few meaningful rows of the energy and stress factors; "
                    f"{la['gram_rows_formed']} of {solves['M']} rows in {la['gram_row_batches']} batches here; the "
                    f"whole matrix, formed only past 20 % of the rows, took {la['compact_gram_s']:.2f} s alone); "
                    if la.get("gram_rows_formed") is not None
                    else "`lassolars` does not use that triangle: its first call forms the Gram matrix A^T A from "
                    "the class factors (BLAS-3, about M^3/3 flops for the force class, the few meaningful rows of the "
                    f"energy and stress factors; {la['compact_gram_s']:.2f} s alone) and runs the path on it; "
                )
                + (
                    "the Gram rows are kept with the system, so a prepared call (the system of the alpha scan) "
                    "runs the path only.  "
                    if "sklearn_pre_s" in la
                    else "its fresh and prepared calls did the same work (no Gram cache then).  "
                )
                if la.get("compact_gram_s") is not None
                else ""
            )
            + (
                "LASSO is compared like for like twice: each call right after a system load (compact: a newly "
                "loaded system; LassoLars: called after loading a system too, so both start from the same memory "
                "state), and repeated calls in one process (compact: the cached Gram rows dropped before each "
                "call, so every call forms them again; LassoLars: its repeated calls).  "
                if "reformed_s" in la
                else ""
            )
            + "Dense "
            "references on the explicit weighted A (`w A`, `w b`): "
            f"`scipy.linalg.lstsq(A, b, cond={s['eps']:g}, lapack_driver='gelsd', check_finite=False)` and "
            f"`sklearn.linear_model.LassoLars(alpha, fit_intercept=False, max_iter={args.sk_max_iter})` "
            "(default `precompute='auto'`: it forms the Gram matrix A^T A first; A^T A alone took "
            f"{la['gram_s']:.1f} s).  scipy {solves['scipy']}, scikit-learn {solves['sklearn']}, OpenBLAS with "
            f"2 threads.  One call each"
            + (
                f" (prepared: best of {args.repeat}; `lassolars` fresh and LassoLars: best of {args.repeat} too, "
                "each fresh call on a newly loaded system; all times below)"
                if args.repeat > 1 and "cold_all_s" in la
                else (f" (prepared: best of {args.repeat})" if args.repeat > 1 else "")
            )
            + ".\n"
        )
        L.append(
            "| problem | compact solver | fresh (s) | prepared (s) | dense reference | dense (s) | "
            "dense / fresh | dense / prepared | agreement |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|")
        L.append(
            f"| least squares, eps = {s['eps']:g} | `svd` | {s['cold_s']:.2f} | {s['warm_s']:.2f} | scipy `lstsq` "
            f"(gelsd) | {s['scipy_s']:.2f} | {s['scipy_s'] / s['cold_s']:.2f} | {s['scipy_s'] / s['warm_s']:.2f} | "
            f"rank {s['rank_ours']} vs {s['rank_scipy']}; ‖x − x_ref‖/‖x_ref‖ = {s['x_reldiff']:.1e}; weighted "
            f"RSS {s['wrss_ours']:.8e} vs {s['wrss_scipy']:.8e} |"
        )
        agree = (
            f"{la['nonzero_lassolars']} vs {la['nonzero_sklearn']} non-zero; ‖x − x_ref‖/‖x_ref‖ = "
            f"{la['x_reldiff_lassolars_sklearn']:.1e}; objective {la['obj_lassolars']:.10g} vs {la['obj_sklearn']:.10g}"
        )
        if "reformed_s" in la:
            L.append(
                f"| LASSO, alpha = {la['alpha']:.4g}, each call right after a system load | `lassolars` (fresh "
                f"system) | {la['cold_s']:.2f} | - | sklearn `LassoLars`, each call right after a system load | "
                f"{la['sklearn_after_load_s']:.2f} | {la['sklearn_after_load_s'] / la['cold_s']:.2f} | - | {agree} |"
            )
            L.append(
                f"| LASSO, alpha = {la['alpha']:.4g}, repeated calls in one process | `lassolars` (Gram rows "
                f"dropped before each call) | {la['reformed_s']:.2f} | - | sklearn `LassoLars` | "
                f"{la['sklearn_s']:.2f} | {la['sklearn_s'] / la['reformed_s']:.2f} | - | same x as the fresh call to "
                f"{la['x_reldiff_reformed']:.1e} |"
            )
            L.append(
                f"| LASSO, alpha = {la['alpha']:.4g}, Gram rows kept (alpha scan) | `lassolars` (prepared) | - | "
                f"{la['warm_s']:.2f} | sklearn `LassoLars` | {la['sklearn_s']:.2f} | - | "
                f"{la['sklearn_s'] / la['warm_s']:.2f} | same x |"
            )
        else:
            L.append(
                f"| LASSO, alpha = {la['alpha']:.4g} | `lassolars` | {la['cold_s']:.2f} | {la['warm_s']:.2f} | "
                f"sklearn `LassoLars` | {la['sklearn_s']:.2f} | {la['sklearn_s'] / la['cold_s']:.2f} | "
                f"{la['sklearn_s'] / la['warm_s']:.2f} | {agree} |"
            )
        L.append(
            f"| LASSO, alpha = {la['alpha']:.4g} | `lasso` (coordinate descent, max_iter {args.cd_max_iter}) | - | "
            f"{la['cd_warm_s']:.2f} | sklearn `LassoLars` | {la['sklearn_s']:.2f} | - | "
            f"{la['sklearn_s'] / la['cd_warm_s']:.2f} | {la['nonzero_cd']} non-zero; ‖x − x_ref‖/‖x_ref‖ = "
            f"{la['x_reldiff_cd_sklearn']:.1e}; objective {la['obj_cd']:.10g} |"
        )
        if "sklearn_pre_s" in la:
            L.append(
                f"| LASSO, alpha = {la['alpha']:.4g}, Gram matrix already formed | `lassolars` (prepared) | - | "
                f"{la['warm_s']:.2f} | sklearn `LassoLars(precompute=A^T A)` | {la['sklearn_pre_s']:.2f} | - | "
                f"{la['sklearn_pre_s'] / la['warm_s']:.2f} | same x as plain LassoLars to "
                f"{la['x_reldiff_sklearn_pre']:.1e} |"
            )
        L.append("")
        L.append(
            "Objective: 1/(2N) ‖wAx − wb‖² + alpha ‖x‖₁ and weighted RSS ‖wAx − wb‖², evaluated on the dense A for "
            "every solution.  Non-zero: |x_j| > 1e-5 (chimes_lsq's count); active (exactly non-zero): "
            f"{la['active_lassolars']} (`lassolars`) vs {la['active_sklearn']} (sklearn), supports differing in "
            f"{la['support_diff_lassolars_sklearn']} column(s).  `lassolars`: {la['steps_lassolars']} LARS steps "
            f"({la['drops_lassolars']} drops"
            + (f", {la['degenerate_lassolars']} degenerate column(s) skipped" if "degenerate_lassolars" in la else "")
            + f"), reached alpha: {la['converged_lassolars']}; sklearn: "
            f"{la['steps_sklearn']} steps"
            + (f" — **capped at max_iter = {args.sk_max_iter}**" if la["sklearn_capped"] else "")
            + f", {la['sklearn_nwarnings']} warning(s)"
            + (
                f".  Times of the {len(la['cold_all_s'])} calls: `lassolars` fresh "
                f"{', '.join(f'{t:.2f}' for t in la['cold_all_s'])} s, prepared "
                f"{', '.join(f'{t:.2f}' for t in la['warm_all_s'])} s, LassoLars "
                f"{', '.join(f'{t:.2f}' for t in la['sklearn_all_s'])} s"
                + (
                    f", `lassolars` with the Gram matrix formed anew "
                    f"{', '.join(f'{t:.2f}' for t in la['reformed_all_s'])} s, LassoLars right after a system load "
                    f"{', '.join(f'{t:.2f}' for t in la['sklearn_after_load_all_s'])} s"
                    if "reformed_all_s" in la
                    else ""
                )
                + (
                    f", LassoLars with the Gram matrix given {', '.join(f'{t:.2f}' for t in la['sklearn_pre_all_s'])} s"
                    if "sklearn_pre_all_s" in la
                    else ""
                )
                if "cold_all_s" in la
                else ""
            )
            + (": " + "; ".join(f"`{w}`" for w in la["sklearn_warnings"]) if la["sklearn_warnings"] else "")
            + f".  `lasso`: {la['sweeps_cd']} sweeps, converged {la['converged_cd']}, duality gap / N "
            f"{la['gap_cd']:.3g} (objective {la['obj_cd']:.6g}).  Fresh and prepared give the same x (relative "
            f"difference svd {s['x_reldiff_warm_cold']:.0e}, lassolars {la['x_reldiff_warm_cold']:.0e}).  SVD: the "
            f"weighted RSS from the compact factor for the compact solution is {s['wrss_compact']:.8e} (dense: "
            f"{s['wrss_ours']:.8e}).  Other load during the solves (cores, over all calls of each; '-' = under "
            f"1 s in all, too short to tell): combine {fmt_load(solves['prep_other'])}, svd "
            f"{fmt_load(s['ours_other'])}, lstsq {fmt_load(s['scipy_other'])}, lassolars "
            f"{fmt_load(la['lassolars_other'])}, lasso {fmt_load(la['cd_other'])}, LassoLars "
            f"{fmt_load(la['sklearn_other'])}.\n"
        )
        if solves["alpha_scan"]:
            L.append(
                f"alpha was chosen as the first of a descending scan (ratios of alpha_max = max|A^T b|/N = "
                f"{solves['alpha_max']:.4g}) giving at least {args.target_nonzero} non-zero coefficients with the "
                "compact `lassolars` (prepared system):\n"
            )
            L.append("| alpha / alpha_max | alpha | non-zero | active | LARS steps | time (s) |")
            L.append("|---|---|---|---|---|---|")
            for r in solves["alpha_scan"]:
                L.append(
                    f"| {r['ratio']:g} | {r['alpha']:.4g} | {r['nonzero']} | {r['active']} | {r['iterations']} "
                    f"| {r['s']:.2f} |"
                )
            L.append("")
        old_solves = (older or {}).get("solves")
        if old_solves and "solve" in (older or {}).get("superseded", []):
            ol = old_solves["lasso"]
            L.append(
                f"Older figures, for comparison (run of {older['date']}, code {older['code']}; the Gram matrix "
                "then formed by blocks of general matrix products): `lassolars` at alpha = "
                f"{ol['alpha']:.4g} took {ol['cold_s']:.2f} s on a freshly loaded system and {ol['warm_s']:.2f} s "
                f"prepared ({ol['steps_lassolars']} steps) against {ol['sklearn_s']:.2f} s for LassoLars in that run "
                f"({ol['sklearn_s'] / ol['cold_s']:.2f}x and {ol['sklearn_s'] / ol['warm_s']:.2f}x).\n"
            )
        gram_part = la.get("compact_gram_s")
        why = (
            f"the compact `lassolars` call took {la['cold_s']:.2f} s fresh"
            + (
                f", of which {gram_part:.2f} s formed the Gram matrix from the class factors (about M^3/3 flops) "
                f"and {la['cold_s'] - gram_part:.2f} s went to the path ({la['steps_lassolars']} steps of O(M k) "
                "each) and the quality numbers"
                if gram_part is not None
                else ""
            )
            + f"; LassoLars took {la['sklearn_s']:.2f} s: {la['gram_s']:.2f} s forming A^T A (N M^2 flops, 3 N/M = "
            f"{3 * solves['N'] / solves['M']:.1f} times as many as the compact Gram matrix) and "
            f"{la['sklearn_s'] - la['gram_s']:.2f} s on its path.  With N/M = {solves['N'] / solves['M']:.1f} the "
            "compact solve is bounded by forming its own Gram matrix; its advantage grows with N."
        )
        if "reformed_s" in la:
            r_load = la["sklearn_after_load_s"] / la["cold_s"]
            r_warm = la["sklearn_s"] / la["reformed_s"]
            if la["cold_s"] > 1.2 * la["reformed_s"]:
                why = (
                    f"a call right after a system load took {la['cold_s']:.2f} s against {la['reformed_s']:.2f} s "
                    f"in a warm process: the {(solves['M'] + 1) ** 2 * 8 / 1e6:.0f} MB of the new Gram matrix are "
                    "fresh memory there, which this virtual machine maps slowly right after a large load.  "
                    + why[0].upper()
                    + why[1:]
                )
            goals.append(
                (
                    "compact LASSO at least 10x faster than LassoLars on the dense A",
                    min(r_load, r_warm) >= 10.0,
                    f"{r_warm:.2f}x with both solving repeatedly in one process (`lassolars` forming its Gram rows "
                    f"anew each call, {la['reformed_s']:.2f} s, vs LassoLars {la['sklearn_s']:.2f} s); {r_load:.2f}x "
                    f"with each call right after a system load ({la['cold_s']:.2f} s vs "
                    f"{la['sklearn_after_load_s']:.2f} s); {la['sklearn_s'] / la['warm_s']:.2f}x with the Gram rows "
                    f"kept ({la['warm_s']:.2f} s), {la['sklearn_pre_s'] / la['warm_s']:.1f}x against LassoLars given "
                    f"the dense Gram matrix ({la['sklearn_pre_s']:.2f} s); coordinate-descent `lasso` (prepared): "
                    f"{la['sklearn_s'] / la['cd_warm_s']:.2f}x",
                    why,
                )
            )
        else:
            goals.append(
                (
                    "compact LASSO at least 10x faster than LassoLars on the dense A",
                    la["sklearn_s"] / la["cold_s"] >= 10.0,
                    f"{la['sklearn_s'] / la['cold_s']:.2f}x from a fresh system (`lassolars` {la['cold_s']:.1f} s "
                    f"vs LassoLars {la['sklearn_s']:.1f} s); {la['sklearn_s'] / la['warm_s']:.2f}x on a prepared "
                    f"system ({la['warm_s']:.2f} s, Gram matrix kept)"
                    + (
                        f", {la['sklearn_pre_s'] / la['warm_s']:.1f}x against LassoLars given the dense Gram matrix "
                        f"({la['sklearn_pre_s']:.2f} s)"
                        if "sklearn_pre_s" in la
                        else ""
                    )
                    + "; coordinate-descent `lasso` (prepared): "
                    f"{la['sklearn_s'] / la['cd_warm_s']:.2f}x",
                    why,
                )
            )

    # ------------------------------------------------------------ goals
    L.append("## Goals\n")
    L.append("| goal | measured | |")
    L.append("|---|---|---|")
    for name, ok, text, _ in goals:
        L.append(f"| {name} | {text} | {verdict(ok)} |")
    L.append("")
    missed = [(name, why) for name, ok, _, why in goals if not ok and why]
    if missed:
        L.append("Likely reasons for the missed goals (from the measurements above):\n")
        for name, why in missed:
            L.append(f"- *{name}*: {why}")
        L.append("")
    if disturbed:
        L.append("Disturbance: " + disturbed + "\n")

    # ------------------------------------------------------------ environment
    L.append("## Environment\n")
    L.append(f"- Date: {info['date']}")
    L.append(
        f"- CPU: {info['cpu']}; {info['cpus']} CPU(s), {info['cores_per_socket']} core(s) per socket, "
        f"{info['threads_per_core']} thread(s) per core; memory {info['memory']}"
        + (f"; virtual machine ({info['hypervisor']})" if info.get("hypervisor") else "")
    )
    L.append(
        f"- Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, MPICH {info['mpich']}; "
        f"{info['platform']}"
    )
    L.append(f"- Command: `{command}`")
    if info.get("code_start"):
        same_code = info["code_start"] == info.get("code_end")
        L.append(
            f"- Code measured: aiida-chimes at {info['code_start']}"
            + ("" if same_code else f"; **changed during the run**, at the end: {info.get('code_end')}")
        )
    if rows and rows.get("reused"):
        L.append(
            "- Row files for the memory runs and the dense A: reused from an earlier run of this script in the "
            "same working folder"
        )
    if rows and not rows.get("reused"):
        L.append(
            f"- Row files for the memory runs and the dense A: built by two 1-thread children at once "
            f"({rows['wall_s']:.0f} s, {statistics.mean(rows['times']):.1f} s/frame), not part of the figures"
        )
    L.append("")
    return "\n".join(L)


# ============================================================================ main
#: Options the report needs (saved in results.json).
REPORT_ARGS = ("frames", "replicate", "sk_max_iter", "cd_max_iter", "repeat", "target_nonzero", "eps")


def report_from(path: Path, output: Path | None) -> int:
    """Rewrite the report from the results.json of an earlier run."""
    saved = json.loads(Path(path).read_text())
    args = argparse.Namespace(**saved["args"])
    builds = {int(k): v for k, v in saved["builds"].items()}
    mem = {int(k) if k.isdigit() else k: v for k, v in saved["mem"].items()}
    report = build_report(
        args,
        saved["info"],
        builds,
        saved["same"],
        saved["rows"],
        mem,
        saved["diag"],
        saved["solves"],
        saved["command"],
        saved["disturbed"],
        saved.get("older"),
    )
    if output is None:
        print(report)
    else:
        output.write_text(report)
        print(f"wrote {output}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="4 frames with orders 8/4/2, no waiting: smoke run, writes no results file unless --output",
    )
    ap.add_argument("--frames", type=int, default=None, help="frames (default 20; 4 with --quick)")
    ap.add_argument("--orders", default=None, help="override the PAIRTYP orders, e.g. '8 4 2' (default: the file's)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts of the builds (default 1 2)")
    ap.add_argument("--replicate", type=int, default=10, help="replication factor of the big memory run (10)")
    ap.add_argument("--eps", type=float, default=1e-5, help="relative SVD cutoff (1e-5)")
    ap.add_argument("--alpha", type=float, default=None, help="LASSO alpha (default: scan, see --target-nonzero)")
    ap.add_argument(
        "--alpha-ratios",
        type=float,
        nargs="+",
        default=[1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5],
        help="alpha / alpha_max values scanned, descending",
    )
    ap.add_argument("--target-nonzero", type=int, default=200, help="alpha scan stops at this many non-zero (200)")
    ap.add_argument("--sk-max-iter", type=int, default=5000, help="max_iter of sklearn LassoLars (5000)")
    ap.add_argument("--cd-max-iter", type=int, default=100000, help="max sweeps of the compact lasso (100000)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed calls of each compact solver on the prepared system (best is kept; 1)",
    )
    ap.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the diagnostic of the class-factor merges (~15 s)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="before each timed part wait up to this many seconds for other processes to go below "
        "0.25 cores (default 600; 0 with --quick)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=None,
        help="rerun a build when other processes used >= 0.25 cores during it (default 1; 0 with --quick)",
    )
    ap.add_argument("--workdir", type=Path, default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the working folder")
    ap.add_argument("--skip", nargs="*", default=[], choices=["build", "memory", "solve"], help="parts to skip")
    ap.add_argument(
        "--output", type=Path, default=None, help="results file (default benchmarks/results/fit.md; none with --quick)"
    )
    ap.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="results.json of an earlier run: the parts skipped now (build, diagnostic) are reported "
        "from it, marked as older; re-measured parts get a comparison line",
    )
    ap.add_argument(
        "--report-from",
        type=Path,
        default=None,
        help="write the report from a results.json of an earlier run (kept with --keep) and exit",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        spec = json.loads(args.child)
        fn = {"rows": child_rows, "fold": child_fold, "compare": child_compare, "diagnose": child_diagnose}[
            spec["task"]
        ]
        print("RESULT " + json.dumps(fn(spec)), flush=True)
        return 0

    if args.report_from is not None:
        return report_from(args.report_from, args.output)
    if args.frames is None:
        args.frames = 4 if args.quick else 20
    if args.quick and args.orders is None:
        args.orders = "8 4 2"
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 600.0
    if args.retries is None:
        args.retries = 0 if args.quick else 1
    output = args.output
    if output is None and not args.quick:
        output = ROOT / "benchmarks" / "results" / "fit.md"
    script = Path(sys.argv[0]).resolve()
    command = "python " + shlex.join(
        [
            str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0],
            *(sys.argv[1:] if argv is None else argv),
        ]
    )

    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="chimes-fitbench-")
        work = Path(tmp)
    else:
        work = args.workdir.resolve()
    t_start = time.perf_counter()
    try:
        info = machine_info()
        info["code_start"] = code_state()
        setup = prepare(work, args.frames, args.orders)
        print(f"[data] {work}: {args.frames} frames" + (f", orders {args.orders}" if args.orders else ""), flush=True)

        builds, same = {}, None
        if "build" not in args.skip:
            # warm-up: 1 frame, low orders, so that the numba cache is current before the timed runs
            warm = work / "warmup"
            wsetup = prepare(warm, 1, "6 4 2")
            print("[warm-up] 1 frame, orders 6/4/2 ...", flush=True)
            run_measured(
                [str(BIN / "chimes-lsq"), wsetup.name, "--compact-only", "-q", "-o", "w.npz"],
                warm,
                ONE_THREAD,
                "warmup",
            )
            builds = build_runs(args, work, setup)
            paths = [work / f"system_{r}rank.npz" for r in builds]
            if len(paths) > 1:
                same = compare_systems(paths)
                print(f"[build] systems agree to {same:.1e}", flush=True)

        rows, mem = None, {}
        if "memory" not in args.skip or "solve" not in args.skip:
            rows = build_rows(args, work, setup, args.frames)
        if "memory" not in args.skip:
            mem = memory_runs(args, work, args.frames)
            if (work / "system_1rank.npz").exists():
                mem["fold_vs_build"] = compare_systems([work / "system_1rank.npz", work / "system_fold.npz"])
                print(f"[memory] folded system vs chimes-lsq: {mem['fold_vs_build']:.1e}", flush=True)

        diag = None
        if args.diagnose and (work / "system_1rank.npz").exists():
            print("[diagnose] subnormals, class folds and merges (1 BLAS thread) ...", flush=True)
            diag = run_child({"task": "diagnose", "path": str(work / "system_1rank.npz")}, ONE_THREAD)
            print("    " + json.dumps(diag["classes"]), flush=True)

        solves = None
        if "solve" not in args.skip:
            sys_path = work / "system_1rank.npz"
            if not sys_path.exists():
                sys_path = work / "system_fold.npz"
            if not sys_path.exists():
                spec = {
                    "task": "fold",
                    "rows": str(work / "rows"),
                    "nframes": args.frames,
                    "copies": 1,
                    "weights": WEIGHTS,
                    "save": str(work / "system_fold.npz"),
                }
                run_child(spec)
                sys_path = work / "system_fold.npz"
            solves = solve_runs(args, work, sys_path, args.frames)

        loads = []
        for ranks, r in builds.items():
            loads.append((f"{ranks}-rank build", r["other_load"]))
        older = None
        if args.previous is not None:
            prev = json.loads(Path(args.previous).read_text())
            older = {
                "date": prev["info"]["date"],
                "code": prev["info"].get("code_start", "?"),
                "command": prev["command"],
                "parts": [],
                "superseded": [],
                "mem": prev.get("mem"),
                "solves": prev.get("solves"),
            }
            if not builds and prev.get("builds"):
                builds = {int(k): v for k, v in prev["builds"].items()}
                same = prev.get("same")
                older["parts"].append("build")
            if diag is None and prev.get("diag"):
                diag = prev["diag"]
                older["parts"].append("diagnose")
            if mem and prev.get("mem"):
                older["superseded"].append("mem")
            if solves and prev.get("solves"):
                older["superseded"].append("solve")
        for r in mem.values():
            if isinstance(r, dict):
                loads.append((f"{r['nframes']}-frame fold", r["other_load"]))
        if solves:
            loads.append(("combine", solves["prep_other"]))
            for key, name in (("ours_other", "svd"), ("scipy_other", "lstsq")):
                loads.append((name, solves["svd"][key]))
            for key, name in (("lassolars_other", "lassolars"), ("cd_other", "lasso"), ("sklearn_other", "LassoLars")):
                loads.append((name, solves["lasso"][key]))
        info["code_end"] = code_state()
        bad = [f"{n} ({x:.2f} cores)" for n, x in loads if x is not None and x >= QUIET]
        disturbed = (
            ("other processes used at least 0.25 cores during: " + ", ".join(bad) + "; those figures may be disturbed.")
            if bad
            else ("none: other processes used less than 0.25 cores during every timed part.")
        )
        saved = {
            "args": {k: getattr(args, k) for k in REPORT_ARGS},
            "info": info,
            "builds": {str(k): v for k, v in builds.items()},
            "same": same,
            "rows": rows,
            "mem": {str(k): v for k, v in mem.items()},
            "diag": diag,
            "solves": solves,
            "command": command,
            "disturbed": disturbed,
            "older": older,
        }
        (work / "results.json").write_text(json.dumps(saved, indent=1))
        report = build_report(args, info, builds, same, rows, mem, diag, solves, command, disturbed, older)
        print(f"[done] {time.perf_counter() - t_start:.0f} s", flush=True)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(report)
            print(f"wrote {output}")
        else:
            print(report)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif args.keep or args.workdir is not None:
            print(f"working folder kept: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
