#!/usr/bin/env python
"""Timing and work counts of the numba ChIMES evaluator (energy + forces + stress) on three reference cases.

For every case and every thread count a fresh child process is started with ``NUMBA_NUM_THREADS`` set (numba
fixes its thread pool at import).  The child times the import, the parameter parsing, the first evaluation
(numba compilation or cache load, thread-pool start-up) and then ``--repeat`` further evaluations in-process.
Separately, the parent counts the 2-, 3- and 4-body clusters evaluated, the coefficient rows visited and the
prefix-tree nodes walked, and turns them into rows/s and an estimated GFLOP/s.

Cases (parameter file, configuration):

* ``liqC``  liquid carbon 2+3b, 200 atoms: published_params.liqC.2+3b.cubic.txt, liqC.2.5gcc_6000K.OUTCAR_#000.xyz
* ``HN3``   HN3 2+3+4b, 512 atoms: published_params.HN3.2+3+4b.Tersoff.special.offsets.txt,
  HN3.2gcc_3000K.OUTCAR_#000.xyz
* ``CN``    C/N hierarchical 2+3+4b, 216 atoms: published_params.CN-hierarch.2+3+4b.Tersoff.txt,
  benchmarks/data/CN_20.3percN_3.5gcc_frame0.xyzf

Usage::

    python benchmarks/evaluator.py                      # full run, writes benchmarks/results/evaluator.md
    python benchmarks/evaluator.py --quick              # smoke run, writes nothing
    python benchmarks/evaluator.py --repeat 20 --repeat-4b 3 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FF = ROOT / "tests" / "data" / "force_fields"
CONF = ROOT / "tests" / "data" / "chimes_calculator" / "configurations"

#: name -> (description, parameter file, configuration, body order, official C++ serial time in s, its source)
CASES = {
    "liqC": (
        "liquid C 2+3b",
        FF / "published_params.liqC.2+3b.cubic.txt.gz",
        CONF / "liqC.2.5gcc_6000K.OUTCAR_#000.xyz",
        3,
        0.017,
        "project issue (~17 ms)",
    ),
    "HN3": (
        "HN3 2+3+4b",
        FF / "published_params.HN3.2+3+4b.Tersoff.special.offsets.txt.gz",
        CONF / "HN3.2gcc_3000K.OUTCAR_#000.xyz",
        4,
        7.3,
        "shared/notes/chimes.md s.7: 7.3 s, unoptimised example incl. parameter parsing, measured on a 2-core "
        "AMD EPYC machine of this project",
    ),
    "CN": (
        "C/N hierarch 2+3+4b",
        FF / "published_params.CN-hierarch.2+3+4b.Tersoff.txt.gz",
        ROOT / "benchmarks" / "data" / "CN_20.3percN_3.5gcc_frame0.xyzf",
        4,
        44.0,
        "project issue (~44 s)",
    ),
}

#: Flops per prefix-tree node in ``evaluate._tree_sum``: on the way up G += P*dT*s (3) and S += T*s (2);
#: the product P*T on the way down (1 more on all but the last level) is not counted.
FLOPS_PER_NODE = 5


def naive_flops_per_row(npair: int) -> int:
    """Row-by-row evaluation: npair multiplies for c*prod T (energy) + 2*npair for the npair derivatives
    (prefix/suffix products times dT) = 3*npair (9 for 3-body, 18 for 4-body)."""
    return 3 * npair


# ============================================================================ configurations
def read_configuration(path: Path):
    """(symbols, positions, cell) of a chimes_calculator .xyz configuration or the first frame of an .xyzf."""
    from aiida_chimes.chimes.io.configuration import read_chimes_configuration
    from aiida_chimes.chimes.io.xyzf import read_xyzf

    if Path(path).suffix == ".xyzf":
        frame = read_xyzf(path)[0]
        return frame.symbols, frame.positions, frame.cell
    return read_chimes_configuration(path)


# ============================================================================ child: one case, one thread count
def child(spec: dict) -> dict:
    """Runs in a fresh process with NUMBA_NUM_THREADS already set."""
    t0 = time.perf_counter()
    try:
        from aiida_chimes.chimes import ChimesModel
    except ImportError:
        sys.path.insert(0, str(ROOT))
        from aiida_chimes.chimes import ChimesModel
    import numba

    t_import = time.perf_counter() - t0
    _, ff, conf, *_ = CASES[spec["case"]]
    t0 = time.perf_counter()
    model = ChimesModel(str(ff))
    t_load = time.perf_counter() - t0
    symbols, pos, cell = read_configuration(conf)

    def once():
        t = time.perf_counter()
        res = model.evaluate(symbols, pos, cell)
        dt = time.perf_counter() - t
        if res.forces is None or res.stress is None:
            raise RuntimeError("evaluation returned no forces or stress")
        return dt, res

    t_first, res = once()
    for _ in range(spec["warmup"]):
        once()
    times = []
    for _ in range(spec["repeat"]):
        dt, res = once()
        times.append(dt)
    try:
        layer = numba.threading_layer()
    except Exception:  # noqa: BLE001 - only informative
        layer = "?"
    return {
        "case": spec["case"],
        "threads": numba.get_num_threads(),
        "natoms": len(symbols),
        "import_s": t_import,
        "load_s": t_load,
        "first_s": t_first,
        "times_s": times,
        "energy": res.energy,
        "fmax": float(np.abs(res.forces).max()),
        "stress_trace": float(np.trace(res.stress)),
        "threading_layer": layer,
        "numba": numba.__version__,
        "numpy": np.__version__,
    }


def _busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine since boot (all CPUs, from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            tok = fh.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...
    vals = [int(x) for x in tok[1:]]
    busy = vals[0] + vals[1] + vals[2] + sum(vals[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


#: Environment variables that change threading behaviour, reported in the results.
ENV_KEYS = (
    "OMP_WAIT_POLICY",
    "NUMBA_THREADING_LAYER",
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "GOMP_SPINCOUNT",
    "NUMBA_CACHE_DIR",
    "NUMBA_DISABLE_JIT",
)

#: Other processes using less than this many cores count as a quiet machine.
QUIET = 0.25


def wait_for_quiet(max_wait: float, threshold: float = QUIET) -> float | None:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores; return that load."""
    t_end = time.monotonic() + max_wait
    while True:
        b0 = _busy_seconds()
        time.sleep(1.0)
        b1 = _busy_seconds()
        load = None if b0 is None or b1 is None else (b1 - b0) / 1.0
        if load is None or load < threshold or time.monotonic() >= t_end:
            return load
        time.sleep(2.0)


def run_child(spec: dict, threads: int, timeout: float, cache_dir: str | None = None, extra_env=None) -> dict:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(extra_env or {})
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    busy0 = _busy_seconds()
    own0 = os.times()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    busy1 = _busy_seconds()
    own1 = os.times()
    own = (
        own1.children_user
        + own1.children_system
        + own1.user
        + own1.system
        - own0.children_user
        - own0.children_system
        - own0.user
        - own0.system
    )
    # CPU used by other processes while the child ran, in cores (other sessions share this machine)
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - own) / wall)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        return {"error": f"child exited {proc.returncode}: " + " | ".join(tail)}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            out = json.loads(line[7:])
            out["process_wall_s"] = wall
            out["other_load"] = other
            return out
    return {"error": "child printed no result"}


# ============================================================================ work counts
def _count_kernel_factory():
    from numba import njit

    @njit(cache=False)  # compiled in ~1 s; a cache of a nested function would pile up stale files
    def count(types, parent, start, nj, nr, ndr, s3, i3, s4, i4, pair_of, p_rout, b3, sp3, rout3, rc3, w3,
              b4, sp4, rout4, rc4, w4):  # fmt: skip
        """Pairs inside their outer cutoff, and per cluster type (block) the number of 3- and 4-body clusters
        the evaluator computes: same enumeration as ``evaluate._evaluate_kernel`` (home atom, half neighbour
        list, all pairs inside the cluster type's outer cutoffs).  Also the work (w3/w4 per block, e.g. rows)
        done from each home atom."""
        npairs = 0
        home = np.zeros(types.shape[0], dtype=np.int64)
        hist3 = np.zeros(rout3.shape[0], dtype=np.int64)
        hist4 = np.zeros(rout4.shape[0], dtype=np.int64)
        rr = np.empty(6)
        for i in range(types.shape[0]):
            ti = types[i]
            for q in range(start[i], start[i + 1]):
                if nr[q] < p_rout[pair_of[ti, types[parent[nj[q]]]]]:
                    npairs += 1
            if rc3 > 0.0:
                for a in range(s3[i], s3[i + 1]):
                    qa = i3[a]
                    tj = types[parent[nj[qa]]]
                    for b in range(a + 1, s3[i + 1]):
                        qb = i3[b]
                        x0 = ndr[qb, 0] - ndr[qa, 0]
                        x1 = ndr[qb, 1] - ndr[qa, 1]
                        x2 = ndr[qb, 2] - ndr[qa, 2]
                        rjk = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
                        if rjk >= rc3:
                            continue
                        tk = types[parent[nj[qb]]]
                        blk = b3[ti, tj, tk]
                        if blk < 0:
                            continue
                        rr[0] = nr[qa]
                        rr[1] = nr[qb]
                        rr[2] = rjk
                        sp = sp3[ti, tj, tk]
                        ok = True
                        for s in range(3):
                            if rr[sp[s]] >= rout3[blk, s]:
                                ok = False
                        if ok:
                            hist3[blk] += 1
                            home[i] += w3[blk]
            if rc4 > 0.0:
                for a in range(s4[i], s4[i + 1]):
                    qa = i4[a]
                    tj = types[parent[nj[qa]]]
                    for b in range(a + 1, s4[i + 1]):
                        qb = i4[b]
                        x0 = ndr[qb, 0] - ndr[qa, 0]
                        x1 = ndr[qb, 1] - ndr[qa, 1]
                        x2 = ndr[qb, 2] - ndr[qa, 2]
                        rjk = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
                        if rjk >= rc4:
                            continue
                        tk = types[parent[nj[qb]]]
                        for c in range(b + 1, s4[i + 1]):
                            qc = i4[c]
                            x0 = ndr[qc, 0] - ndr[qa, 0]
                            x1 = ndr[qc, 1] - ndr[qa, 1]
                            x2 = ndr[qc, 2] - ndr[qa, 2]
                            rjl = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
                            if rjl >= rc4:
                                continue
                            x0 = ndr[qc, 0] - ndr[qb, 0]
                            x1 = ndr[qc, 1] - ndr[qb, 1]
                            x2 = ndr[qc, 2] - ndr[qb, 2]
                            rkl = np.sqrt(x0 * x0 + x1 * x1 + x2 * x2)
                            if rkl >= rc4:
                                continue
                            tl = types[parent[nj[qc]]]
                            blk = b4[ti, tj, tk, tl]
                            if blk < 0:
                                continue
                            rr[0] = nr[qa]
                            rr[1] = nr[qb]
                            rr[2] = nr[qc]
                            rr[3] = rjk
                            rr[4] = rjl
                            rr[5] = rkl
                            sp = sp4[ti, tj, tk, tl]
                            ok = True
                            for s in range(6):
                                if rr[sp[s]] >= rout4[blk, s]:
                                    ok = False
                            if ok:
                                hist4[blk] += 1
                                home[i] += w4[blk]
        return npairs, hist3, hist4, home

    return count


def _first_difference(rows: np.ndarray) -> np.ndarray:
    """Level (column) where each row of a lexicographically sorted array first differs from the previous
    row; 0 for the first row."""
    d = np.zeros(len(rows), dtype=np.int64)
    if len(rows) > 1:
        d[1:] = np.argmax(rows[1:] != rows[:-1], axis=1)
    return d


def _block_work(blocks, npair: int, tables) -> dict:
    """Per cluster type (block) of the parameter file:

    * ``file``: coefficient rows as listed in the file (permutation-equivalent duplicates included);
    * ``rows``: distinct power rows with a non-zero summed coefficient (sorted lexicographically);
    * ``nodes``: prefix-tree nodes over those rows, sum over rows of (npair - first differing level);
    * ``exec``: flops of the sum as the current ``evaluate._tree_sum`` executes it, from the model's tables
      (None when their layout is not recognised).  Row layout (row_pow has npair columns): 5 per node.
      Grouped layout (row_pow has npair-1 columns, row_coef dense (groups, width)): per group 6 per inner node
      opened and closed, 4*width for the two dot products of the dense last level, 8 for its bookkeeping.
    """
    nb = len(blocks)
    out = {k: np.zeros(nb, dtype=np.int64) for k in ("file", "rows", "nodes", "exec")}
    for b, blk in enumerate(blocks):
        if blk.excluded or len(blk.powers) == 0:
            continue
        out["file"][b] = len(blk.powers)
        uniq, inv = np.unique(np.asarray(blk.powers), axis=0, return_inverse=True)
        c = np.zeros(len(uniq))
        np.add.at(c, np.asarray(inv).ravel(), np.asarray(blk.values, dtype=float))
        uniq = uniq[c != 0.0]
        out["rows"][b] = len(uniq)
        out["nodes"][b] = int(np.sum(npair - _first_difference(uniq)))
    try:
        rs = np.asarray(tables.row_start)
        pw = np.asarray(tables.row_pow)
        coef = np.asarray(tables.row_coef)
        diff = np.asarray(tables.row_diff).astype(np.int64)
        if len(rs) != nb + 1:
            raise ValueError("row_start does not match the blocks")
        if pw.ndim == 2 and pw.shape[1] == npair and coef.ndim == 1:
            for b in range(nb):
                out["exec"][b] = FLOPS_PER_NODE * int(np.sum(npair - diff[rs[b] : rs[b + 1]]))
        elif pw.ndim == 2 and pw.shape[1] == npair - 1 and coef.ndim == 2:
            width = coef.shape[1]
            for b in range(nb):
                g = rs[b + 1] - rs[b]
                inner = int(np.sum(npair - 2 - diff[rs[b] : rs[b + 1]]))
                out["exec"][b] = 6 * inner + (4 * width + 8) * g
        else:
            raise ValueError("unknown table layout")
    except (AttributeError, ValueError, IndexError):
        out["exec"] = None
    return out


def count_work(case: str) -> dict:
    """Clusters evaluated, coefficient rows visited and tree nodes walked in one evaluation of ``case``."""
    from aiida_chimes.chimes import ChimesModel
    from aiida_chimes.chimes.clusters import filter_neighbors, half_neighbor_list, wrap_and_replicate

    _, ff, conf, *_ = CASES[case]
    model = ChimesModel(str(ff))
    symbols, pos, cell = read_configuration(conf)
    types = model.types_of(symbols)
    n = len(types)
    ext, parent = wrap_and_replicate(pos, cell, np.ones(3, dtype=bool), model.rcut)
    start, nj, nr, ndr = half_neighbor_list(n, ext, parent, model.rcut)
    nt = len(model.symbols)
    p = model.params

    def side(t, nbody):
        npair = nbody * (nbody - 1) // 2
        if t is None or t.rcut <= 0:
            return (np.zeros(n + 1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                    np.full((nt,) * nbody, -1, dtype=np.int64), np.zeros((nt,) * nbody + (npair,), dtype=np.int64),
                    np.zeros((1, npair)), 0.0)  # fmt: skip
        s, idx = filter_neighbors(start, nj, nr, t.rcut)
        return (s, idx, np.ascontiguousarray(t.block_of), np.ascontiguousarray(t.slot_pair),
                np.ascontiguousarray(t.rout, dtype=np.float64), float(t.rcut))  # fmt: skip

    s3, i3, b3, sp3, rout3, rc3 = side(model.t3, 3)
    s4, i4, b4, sp4, rout4, rc4 = side(model.t4, 4)
    bw3 = _block_work(p.triplets, 3, model.t3) if model.t3 is not None else None
    bw4 = _block_work(p.quadruplets, 6, model.t4) if model.t4 is not None else None

    def rows_of(bw, nblock):
        w = np.zeros(nblock, dtype=np.int64)
        if bw is not None:
            m = min(nblock, len(bw["rows"]))
            w[:m] = bw["rows"][:m]
        return w

    count = _count_kernel_factory()
    npairs, hist3, hist4, home = count(types, parent, start, nj, nr, ndr, s3, i3, s4, i4, model.pair_of,
                                       model.p_rout, b3, sp3, rout3, rc3, rows_of(bw3, rout3.shape[0]), b4, sp4,
                                       rout4, rc4, rows_of(bw4, rout4.shape[0]))  # fmt: skip
    work = {"natoms": n, "pairs": int(npairs), "orders": tuple(p.orders)}
    # balance: share of the many-body rows whose home atom lies in the first half of the atom indices
    total_home = home.sum()
    work["first_half_share"] = float(home[: n // 2].sum() / total_home) if total_home else None
    exec_ok = True
    for nbody, hist, bw in ((3, hist3, bw3), (4, hist4, bw4)):
        work[f"clusters{nbody}"] = int(hist.sum())
        if bw is None or hist.sum() == 0:
            for k in ("rows", "nodes", "filerows", "exec"):
                work[f"{k}{nbody}"] = 0
            continue
        h = hist[: len(bw["rows"])].astype(np.int64)
        work[f"rows{nbody}"] = int(h @ bw["rows"])
        work[f"nodes{nbody}"] = int(h @ bw["nodes"])
        work[f"filerows{nbody}"] = int(h @ bw["file"])
        if bw["exec"] is None:
            exec_ok = False
        else:
            work[f"exec{nbody}"] = int(h @ bw["exec"])
    work["rows"] = work["rows3"] + work["rows4"]
    work["nodes"] = work["nodes3"] + work["nodes4"]
    work["filerows"] = work["filerows3"] + work["filerows4"]
    work["flops_tree"] = FLOPS_PER_NODE * work["nodes"]
    work["flops_naive"] = naive_flops_per_row(3) * work["rows3"] + naive_flops_per_row(6) * work["rows4"]
    work["flops_exec"] = work["exec3"] + work["exec4"] if exec_ok else None
    return work


# ============================================================================ report
def machine_info() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = {}
        for line in lscpu.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        fields = {}
    import numba

    return {
        "cpu": model,
        "cpus": fields.get("CPU(s)", str(os.cpu_count())),
        "threads_per_core": fields.get("Thread(s) per core", "?"),
        "cores_per_socket": fields.get("Core(s) per socket", "?"),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y"),
    }


def fmt_load(x):
    return "?" if x is None else f"{x:.2f}"


def fmt_ms(s):
    return "-" if s is None else f"{1e3 * s:.1f}" if s < 10 else f"{1e3 * s:.0f}"


def build_report(args, results, work, cold, info, command) -> str:
    L = []
    L.append("## Timing (energy + forces + stress, one configuration)\n")
    L.append(
        f"Repeats: {args.repeat} for the 2+3-body case, {args.repeat_4b} for the 4-body cases, after the "
        "first call and warm-up; every (case, threads) row is a fresh process with `NUMBA_NUM_THREADS` set.\n"
    )
    L.append(
        "| case | atoms | threads | first call (s) | median (ms) | min (ms) | µs/atom/eval | "
        "1T/NT | official C++ serial (s) | official / ours (median) | other load (cores) |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        desc, _, _, _, ref, _ = CASES[case]
        base = None
        for t, _, _ in args.runs:
            r = results.get((case, t), {})
            if "error" in r or not r:
                L.append(f"| {desc} | - | {t} | error: {r.get('error', 'not run')} | | | | | | | |")
                continue
            med = statistics.median(r["times_s"]) if r["times_s"] else r["first_s"]
            mn = min(r["times_s"]) if r["times_s"] else r["first_s"]
            if base is None and t == args.runs[0][0]:
                base = med
            sp = f"{base / med:.2f}" if base else "-"
            load = fmt_load(r.get("other_load"))
            L.append(
                f"| {desc} | {r['natoms']} | {t} | {r['first_s']:.2f} | {fmt_ms(med)} | {fmt_ms(mn)} | "
                f"{1e6 * med / r['natoms']:.1f} | {sp} | {ref:g} | {ref / med:.1f}x | {load} |"
            )
    L.append("")
    L.append(
        "`1T/NT`: median time with the first thread count listed divided by this row's median.  "
        "`official / ours`: reference time of the official C++ serial calculator divided by our median "
        "(>1 = we are faster).  Reference times: "
        + "; ".join(f"{CASES[c][0]}: {CASES[c][5]}" for c in args.cases)
        + ".  `other load`: CPU "
        "used by other processes while that child ran, in cores (from /proc/stat; this machine may be "
        "shared), a measure of how trustworthy the row is: with 2 cores, any other load spoils the 2-thread "
        "figures first.\n"
    )

    L.append("## First call and start-up (fresh process)\n")
    L.append("| case | threads | import (s) | parse parameters (s) | first evaluation (s) | process wall (s) |")
    L.append("|---|---|---|---|---|---|")
    for case in args.cases:
        for t, _, _ in args.runs:
            r = results.get((case, t), {})
            if "error" in r or not r:
                continue
            L.append(
                f"| {CASES[case][0]} | {t} | {r['import_s']:.2f} | {r['load_s']:.2f} | {r['first_s']:.2f} | "
                f"{r['process_wall_s']:.1f} |"
            )
    if cold:
        if "error" in cold:
            L.append(f"\nCold compile (empty `NUMBA_CACHE_DIR`): error: {cold['error']}")
        else:
            L.append(
                f"\nCold compile: first evaluation of {CASES[cold['case']][0]} with an empty "
                f"`NUMBA_CACHE_DIR` ({cold['threads']} thread(s)): **{cold['first_s']:.1f} s** "
                f"(import {cold['import_s']:.1f} s).  The rows above load the numba cache "
                "(`cache=True`) written by an earlier run."
            )
    L.append("")

    L.append("## Work per evaluation and throughput\n")
    L.append(
        "Counts of one evaluation, by a separate counter (`count_work` in this script) that enumerates the "
        "clusters as the evaluator does: from each home atom over its half neighbour list, a cluster counted "
        "when all its pairs are inside the cluster type's outer cutoffs (a cluster holding periodic images of "
        "its home atom is met, and counted, once per such image).  'rows': distinct coefficient rows (power "
        "tuples) of the cluster's type (exact duplicates merged, zero sums dropped), summed over clusters; "
        "'file rows': the same with the rows as listed in the parameter file (what a row-by-row "
        "evaluator of the file, such as the official one, visits); 'tree nodes': prefix-tree nodes over the "
        "sorted rows, Σ over rows of (npair − first level where the row differs from the previous one), "
        "counted exactly.\n"
    )
    L.append(
        "| case | pairs (2b) | 3b clusters | 4b clusters | rows | file rows | tree nodes | nodes/row | "
        "flops as executed (est.) |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        w = work.get(case)
        if not w or "error" in w:
            L.append(f"| {CASES[case][0]} | counting failed: {w.get('error') if w else 'not run'} | | | | | | | |")
            continue
        npr = w["nodes"] / w["rows"] if w["rows"] else 0
        fx = "?" if w["flops_exec"] is None else f"{w['flops_exec']:,}"
        L.append(
            f"| {CASES[case][0]} | {w['pairs']:,} | {w['clusters3']:,} | {w['clusters4']:,} | {w['rows']:,} | "
            f"{w['filerows']:,} | {w['nodes']:,} | {npr:.2f} | {fx} |"
        )
    shares = [
        f"{CASES[c][0]} {100 * work[c]['first_half_share']:.0f}%"
        for c in args.cases
        if work.get(c) and "error" not in work[c] and work[c].get("first_half_share") is not None
    ]
    if shares:
        L.append(
            "\nBalance: share of the many-body rows computed from home atoms in the first half of the atom "
            "indices (the half neighbour list keeps neighbours with a higher index, so low indices carry more "
            "clusters; contiguous halves of the atoms on 2 threads would cap the speed-up at "
            "1/max(share, 1 − share); the evaluator therefore deals atoms round-robin to its 16 work chunks): "
            + ", ".join(shares)
            + "."
        )
    if all(w and "error" not in w and w["rows"] == w["filerows"] for w in (work.get(c) for c in args.cases)):
        L.append("\n'rows' = 'file rows' here: these files list no power row twice within a cluster type.")
    L.append("")
    L.append(
        f"Flop models (only the many-body coefficient sums are counted: no Chebyshev polynomials, cutoff "
        "functions, neighbour lists, 2-body terms or force scatter, so every GFLOP/s below is a lower bound on "
        "the arithmetic actually done; the time is that of the whole evaluation):\n\n"
        f"- *tree*: {FLOPS_PER_NODE} flops per prefix-tree node (reverse accumulation in `evaluate._tree_sum`: "
        "G += P·dT·s is 3, S += T·s is 2; the down-sweep product P·T is not counted);\n"
        "- *as executed*: the current `_tree_sum` with its actual table layout: when the rows are grouped by "
        "their first npair−1 powers with a dense last level (width = the 3- or 4-body order of PAIRTYP), "
        "per group 6 flops per inner node plus 4·width for the two dot products over the dense last level "
        "plus 8; with the plain row layout, the tree model;\n"
        "- *naive-equivalent*: what a row-by-row evaluator spends on the same rows, 3·npair per row (npair "
        "multiplies for c·ΠT, 2·npair for the npair pair derivatives with prefix/suffix products) = 9 per "
        "3-body row, 18 per 4-body row (the work model of a row-by-row code such as the official one).\n"
    )
    L.append(
        "| case | threads | median (ms) | M rows/s | G nodes/s | GFLOP/s tree | GFLOP/s as executed | "
        "naive-equivalent GFLOP/s |"
    )
    L.append("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        w = work.get(case)
        if not w or "error" in w:
            continue
        for t, _, _ in args.runs:
            r = results.get((case, t), {})
            if "error" in r or not r or not r["times_s"]:
                continue
            med = statistics.median(r["times_s"])
            fx = "?" if w["flops_exec"] is None else f"{w['flops_exec'] / med / 1e9:.2f}"
            L.append(
                f"| {CASES[case][0]} | {t} | {fmt_ms(med)} | {w['rows'] / med / 1e6:.1f} | "
                f"{w['nodes'] / med / 1e9:.3f} | {w['flops_tree'] / med / 1e9:.2f} | {fx} | "
                f"{w['flops_naive'] / med / 1e9:.2f} |"
            )
    L.append("")

    L.append("## Checks\n")
    for case in args.cases:
        es = [
            results[(case, t)]["energy"]
            for t, _, _ in args.runs
            if (case, t) in results and "energy" in results[(case, t)]
        ]
        if es:
            spread = max(es) - min(es)
            L.append(
                f"- {CASES[case][0]}: E = {es[0]:.6f} kcal/mol; spread over thread counts {spread:.1e} "
                f"kcal/mol{' (bit-identical)' if spread == 0 else ''}."
            )
    layers = {r.get("threading_layer") for r in results.values() if "threading_layer" in r}
    L.append(f"- numba threading layer: {', '.join(sorted(str(x) for x in layers)) or '?'}.")
    L.append("")

    L.append("## Environment\n")
    L.append(f"- Date: {info['date']}")
    L.append(
        f"- CPU: {info['cpu']}; {info['cpus']} CPU(s), {info['cores_per_socket']} core(s) per socket, "
        f"{info['threads_per_core']} thread(s) per core"
    )
    L.append(f"- Python {info['python']}, numba {info['numba']}, numpy {info['numpy']}; {info['platform']}")
    envs = ", ".join(f"{k}={os.environ[k]}" for k in ENV_KEYS if k in os.environ) or "none set"
    L.append(
        f"- Threading-related environment of the parent: {envs}; each child gets `NUMBA_NUM_THREADS` and "
        "`OMP_NUM_THREADS` = its thread count (rows labelled 'passive' also `OMP_WAIT_POLICY=passive`)"
    )
    L.append(f"- Command: `{command}`")
    L.append("")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--repeat", type=int, default=None, help="timed evaluations for the 2+3-body case (default 20; 3 with --quick)"
    )
    ap.add_argument(
        "--repeat-4b", type=int, default=None, help="timed evaluations for the 4-body cases (default 3; 1 with --quick)"
    )
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES), help="cases to run")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="few repeats, no cold-compile run, write no results file unless --output is given",
    )
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-compile (empty numba cache) run")
    ap.add_argument("--no-count", action="store_true", help="skip the cluster/row counting")
    ap.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default benchmarks/results/evaluator.md; none with --quick)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=None,
        help="before each measurement wait up to this many seconds for other processes to go below "
        "0.25 cores of CPU use (default 120; 0 with --quick)",
    )
    ap.add_argument(
        "--retries",
        type=int,
        default=None,
        help="rerun a measurement up to this many times when other processes used >= 0.25 cores during it, "
        "keeping the least disturbed one (default 2; 0 with --quick)",
    )
    ap.add_argument(
        "--omp-passive",
        action="store_true",
        help="also run every thread count > 1 with OMP_WAIT_POLICY=passive (rows labelled 'N passive')",
    )
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to each child process")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0

    if args.repeat is None:
        args.repeat = 3 if args.quick else 20
    if args.repeat_4b is None:
        args.repeat_4b = 1 if args.quick else 3
    if args.wait_quiet is None:
        args.wait_quiet = 0.0 if args.quick else 120.0
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    # runs: (label, threads, extra environment); with --omp-passive also OMP_WAIT_POLICY=passive for N > 1
    args.runs = [(str(t), t, {}) for t in args.threads]
    if args.omp_passive:
        args.runs += [(f"{t} passive", t, {"OMP_WAIT_POLICY": "passive"}) for t in args.threads if t > 1]
    output = args.output
    if output is None and not args.quick:
        output = ROOT / "benchmarks" / "results" / "evaluator.md"
    command = "python " + " ".join(
        shlex.quote(a)
        for a in [
            str(Path(sys.argv[0]).resolve().relative_to(ROOT))
            if Path(sys.argv[0]).resolve().is_relative_to(ROOT)
            else sys.argv[0],
            *(sys.argv[1:] if argv is None else argv),
        ]
    )

    # cold compile: an empty cache directory, so the real cache is neither used nor touched
    cold = None
    if not args.quick and not args.no_cold:
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as tmp:
            print(f"[cold compile] {args.cases[0]}, {args.threads[0]} thread(s), empty NUMBA_CACHE_DIR", flush=True)
            cold = run_child(
                {"case": args.cases[0], "warmup": 0, "repeat": 0}, args.threads[0], args.timeout, cache_dir=tmp
            )
            print("   ", cold.get("error") or f"first evaluation {cold['first_s']:.1f} s", flush=True)
    # make sure the real numba cache is current so that the 'first call' figures are cache loads
    print("[prime cache] ...", flush=True)
    prime = run_child({"case": args.cases[0], "warmup": 0, "repeat": 0}, args.threads[0], args.timeout)
    if "error" in prime:
        print("    error:", prime["error"], flush=True)
    else:
        print(f"    first evaluation {prime['first_s']:.2f} s", flush=True)

    results = {}
    for case in args.cases:
        nbody = CASES[case][3]
        rep = args.repeat_4b if nbody == 4 else args.repeat
        warm = 0 if nbody == 4 else 2
        for label, t, extra in args.runs:
            r = None
            for attempt in range(1 + max(0, args.retries)):
                if args.wait_quiet > 0:
                    load = wait_for_quiet(args.wait_quiet)
                    if load is not None and load >= QUIET:
                        print(f"    warning: other processes use {load:.2f} cores", flush=True)
                again = f" (retry {attempt}: other load {r['other_load']:.2f} cores)" if attempt else ""
                print(f"[{case}] threads={label} repeat={rep}{again} ...", flush=True)
                new = run_child({"case": case, "warmup": warm, "repeat": rep}, t, args.timeout, extra_env=extra)
                if r is None or "error" in r or ("error" not in new and new["other_load"] < r["other_load"]):
                    r = new
                if "error" in r or r.get("other_load") is None or r["other_load"] < QUIET:
                    break
            results[(case, label)] = r
            if "error" in r:
                print("    error:", r["error"], flush=True)
            else:
                ts = r["times_s"]
                med = statistics.median(ts) if ts else float("nan")
                print(
                    f"    first {r['first_s']:.3f} s, median {1e3 * med:.1f} ms, min {1e3 * min(ts or [0]):.1f} ms,"
                    f" E = {r['energy']:.6f} kcal/mol, other load {fmt_load(r.get('other_load'))} cores",
                    flush=True,
                )

    work = {}
    if not args.no_count:
        for case in args.cases:
            print(f"[count] {case} ...", flush=True)
            try:
                t0 = time.perf_counter()
                work[case] = count_work(case)
                print(
                    f"    {work[case]['clusters3']:,} 3b / {work[case]['clusters4']:,} 4b clusters, "
                    f"{work[case]['rows']:,} rows, {work[case]['nodes']:,} nodes "
                    f"({time.perf_counter() - t0:.1f} s)",
                    flush=True,
                )
            except Exception as exc:  # noqa: BLE001 - the evaluator's internals may change under us
                work[case] = {"error": f"{type(exc).__name__}: {exc}"}
                print("    counting failed:", work[case]["error"], flush=True)

    info = machine_info()
    report = build_report(args, results, work, cold, info, command)
    print()
    print(report)
    if output is not None:
        header = (
            "# Evaluator benchmark\n\nNumba ChIMES evaluator (`aiida_chimes.chimes.ChimesModel.evaluate`: "
            "energy, forces and stress) on three reference cases; produced by `benchmarks/evaluator.py` "
            "(the figures below are from an actual run, written by the script).\n\n"
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(header + report)
        print(f"written {output}")
    failed = any("error" in r for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
