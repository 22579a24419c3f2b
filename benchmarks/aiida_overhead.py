"""AiiDA overhead per CalcJob (chimes.regression) and xTB labelling throughput in one CalcJob (chimes.label_xtb).

Creates a throw-away SQLite profile (no broker) in a temporary AIIDA_PATH, sets up the localhost computer and
our codes, and compares in one run:

* a trivial ``chimes.regression`` (SVD of a small C/N fit system) through AiiDA (``run_get_node``) against the
  same ``chimes-solve`` command run directly in a subprocess, and against the in-process solver call;
* ``chimes.label_xtb`` on N frames of a 32-atom C/N cell (GFN1-xTB) in one CalcJob against ``chimes-label`` run
  directly on the same frames: frames per second and the difference (the CalcJob's overhead).

Usage: ``python benchmarks/aiida_overhead.py [--frames 100] [--repeat 3] [--output benchmarks/results/aiida.md]``
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CN_XYZF = ROOT / "tests" / "data" / "xyzf" / "CN_2frames.xyzf"
SETTINGS = {
    "types": ["C", "N"],
    "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 4.5, "morse_lambda": 1.4},
              "N-N": {"s_minim": 0.86, "s_maxim": 4.5, "morse_lambda": 1.09},
              "C-N": {"s_minim": 0.90, "s_maxim": 4.5, "morse_lambda": 1.34}},
    "orders": [8, 4, 0], "fit_energy": True, "fit_stress": "all", "special": {"3B S_MAXIM": 3.5},
    "fcut_type": "TERSOFF", "fcut_var": 0.75,
}


def make_profile(workdir: Path):
    """A fresh sqlite_dos profile without broker in ``workdir`` (run/run_get_node need no broker)."""
    env = dict(os.environ, AIIDA_PATH=str(workdir))
    subprocess.run([str(BIN / "verdi"), "presto", "--no-broker", "--profile-name", "bench"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    os.environ["AIIDA_PATH"] = str(workdir)
    from aiida import load_profile

    return load_profile("bench")


def cn_cells(n: int, seed: int = 0):
    """n distorted 32-atom C24N8 cells (2x2x1 diamond supercell, every 4th atom N)."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    base = bulk("C", "diamond", a=3.57, cubic=True).repeat((2, 2, 1))
    base.numbers[::4] = 7
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(0.0, 0.08, a.positions.shape)
        out.append(a)
    return out


def timed(fn, repeat: int):
    times = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100, help="frames to label with xTB (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats of the regression timings (default %(default)s)")
    ap.add_argument("--output", default=None, help="write the results as markdown to this file")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    scratch = Path(tempfile.mkdtemp(prefix="aiida-chimes-bench-"))
    make_profile(scratch / "aiida")
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_chimes.calculations.label_xtb import LabelXtbCalculation
    from aiida_chimes.calculations.regression import RegressionCalculation, solver_cmdline
    from aiida_chimes.chimes.fit_build import attach_metadata, build_fit_system
    from aiida_chimes.chimes.fit_settings import setup_from_settings
    from aiida_chimes.chimes.frames import FrameSet
    from aiida_chimes.chimes.solvers import solve
    from aiida_chimes.data.fit_system import FitSystemData
    from aiida_chimes.data.training_set import TrainingSetData
    from aiida_chimes.tools.localhost import ensure_codes, ensure_computer

    computer, _ = ensure_computer("localhost", workdir=str(scratch / "work"))
    ensure_codes(computer)
    options = {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1},
                           "max_wallclock_seconds": 3600}}

    # ---------------------------------------------------------------- regression: AiiDA vs direct
    fit_dir = scratch / "fit"
    fit_dir.mkdir()
    fs = FrameSet.from_xyzf(CN_XYZF)
    fs.write_xyzf(fit_dir / "cn.xyzf")
    setup = setup_from_settings(SETTINGS, [("cn.xyzf", len(fs))], base_dir=str(fit_dir))
    system, _ = build_fit_system(setup)
    attach_metadata(system, setup)
    system.save(fit_dir / "fit_system.npz")
    node = FitSystemData.from_file(fit_dir / "fit_system.npz").store()
    params = {"algorithm": "svd", "eps": 1e-5}

    _, t_inproc = timed(lambda: solve(system, "svd", eps=1e-5), args.repeat)
    cmd = [str(BIN / "chimes-solve"), *solver_cmdline(params)]
    _, t_script = timed(lambda: subprocess.run(cmd, cwd=fit_dir, check=True, capture_output=True), args.repeat)
    code = orm.load_code("chimes-solve@localhost")

    def via_aiida():
        _, calc = run_get_node(RegressionCalculation, code=code, fit_system=node, parameters=orm.Dict(params),
                               metadata=dict(options, disable_cache=True))
        assert calc.is_finished_ok, calc.exit_message
        return calc

    _, t_aiida = timed(via_aiida, args.repeat)

    # ---------------------------------------------------------------- xTB labelling: one CalcJob vs direct
    frames = FrameSet.from_atoms(cn_cells(args.frames))
    label_dir = scratch / "label"
    label_dir.mkdir()
    frames.save(label_dir / "structures.npz")
    (label_dir / "label.json").write_text('{"method": "GFN1-xTB", "electronic_temperature": 300.0}')
    t0 = time.perf_counter()
    subprocess.run([str(BIN / "chimes-label"), "label.json"], cwd=label_dir, check=True, capture_output=True)
    t_label_direct = time.perf_counter() - t0
    structures = TrainingSetData.from_frameset(frames).store()
    t0 = time.perf_counter()
    _, calc = run_get_node(LabelXtbCalculation, code=orm.load_code("chimes-label@localhost"), structures=structures,
                           parameters=orm.Dict({"method": "GFN1-xTB", "electronic_temperature": 300.0}),
                           metadata=dict(options, disable_cache=True))
    t_label_aiida = time.perf_counter() - t0
    assert calc.is_finished_ok, calc.exit_message
    direct = FrameSet.load(label_dir / "labelled.npz")
    got = calc.outputs.training_set.get_frameset()
    max_de = float(np.abs(direct.energy - got.energy).max())

    med = statistics.median
    overhead = med(t_aiida) - med(t_script)
    label_overhead = t_label_aiida - t_label_direct
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    lines = [
        "# AiiDA overhead and xTB labelling throughput",
        "",
        f"Produced by `python benchmarks/aiida_overhead.py --frames {args.frames} --repeat {args.repeat}` on "
        f"{datetime.date.today().isoformat()}; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; load average at the end {load:.2f}. "
        "Profile: temporary core.sqlite_dos without broker, `run_get_node`, localhost core.local/core.direct, "
        "caching disabled.  All figures come from this one run.",
        "",
        "## Trivial `chimes.regression` (SVD of a 2-frame C/N system, "
        f"{system.ncols} columns, {system.nrows_total} rows)",
        "",
        "| path | median (s) | runs (s) |",
        "|---|---|---|",
        f"| in-process `solve()` | {med(t_inproc):.3f} | {', '.join(f'{t:.3f}' for t in t_inproc)} |",
        f"| `chimes-solve` subprocess | {med(t_script):.3f} | {', '.join(f'{t:.3f}' for t in t_script)} |",
        f"| `chimes.regression` CalcJob | {med(t_aiida):.3f} | {', '.join(f'{t:.3f}' for t in t_aiida)} |",
        "",
        f"**Overhead per CalcJob** (CalcJob minus the same command run directly): **{overhead:.2f} s** "
        f"(goal < 3 s: {'met' if overhead < 3 else 'missed'}).  CalcJob / in-process solve: "
        f"{med(t_aiida) / med(t_inproc):.0f}x.",
        "",
        f"## xTB labelling: {args.frames} frames of a 32-atom C24N8 cell, GFN1-xTB, one CalcJob",
        "",
        "| path | wall (s) | frames/s |",
        "|---|---|---|",
        f"| `chimes-label` subprocess | {t_label_direct:.1f} | {args.frames / t_label_direct:.2f} |",
        f"| `chimes.label_xtb` CalcJob | {t_label_aiida:.1f} | {args.frames / t_label_aiida:.2f} |",
        "",
        f"Overhead of the labelling CalcJob: {label_overhead:.2f} s for {args.frames} frames "
        f"({'at most' if label_overhead <= max(overhead, 0) + 1.0 else 'more than'} one CalcJob's overhead "
        f"of {overhead:.2f} s, within 1 s of noise).  Energies of the two paths agree to {max_de:.1e} eV.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
