"""Our design matrix, targets and SVD fit against the official ``chimes_lsq`` test suite.

For every test of ``chimes_lsq/test_suite-lsq`` that our fitter can express, the fm_setup.in is read with
:func:`~aiida_chimes.chimes.fit_setup.read_fm_setup`, the model skeleton is built with
:func:`~aiida_chimes.chimes.fit_basis.build_basis` and the rows of every training frame with
:class:`~aiida_chimes.chimes.design.DesignBuilder`; they are compared with the files ``chimes_lsq`` (C++) and
``chimes_lsq.py`` wrote for the same input:

* ``params.header`` / ``ff_groups.map``: byte for byte;
* ``b.txt``: the targets (forces, stresses, energies), row for row;
* ``force.txt`` (A x of the reference solution, printed ``%13.6e``): our A times the reference x;
* ``test_suite_params.txt`` (the reference x): our SVD solution (eps 1e-5, as ``chimes_lsq.py``);
* the ChIMES evaluator with x filled into the skeleton reproduces A x frame by frame;
* ``nonorth2``: the first 200 rows of ``A.txt`` itself.

Data (see ``tests/data/chimes_lsq/INPUTS.md`` and ``README.md``): the training ``.xyzf`` files, trimmed to
the frames the fits use, are in ``tests/data/chimes_lsq/<test>/inputs/*.gz`` and are decompressed next to a
copy of ``tests/data/fm_setup/<test>/fm_setup.in`` in a temporary folder (``read_xyzf`` reads plain text only).
The rows of every test are built once per module.  Builds of the large many-body tests take 4-30 s each;
those tests are marked ``slow``.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from aiida_chimes.chimes.design import CONSTRAINT, ENERGY, FORCE, STRESS, DesignBuilder
from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.fit_basis import build_basis
from aiida_chimes.chimes.fit_setup import read_fm_setup
from aiida_chimes.chimes.fit_system import FitSystem
from aiida_chimes.chimes.io.lsq_files import (
    column_labels,
    fill_coefficients,
    format_ff_groups_map,
    format_params_header,
    n_columns,
    read_A,
    read_b_txt,
    read_dim_txt,
    read_force_txt,
    read_test_suite_params,
)
from aiida_chimes.chimes.solvers import solve

DATA = Path(__file__).parent.parent / "data"
LSQ = DATA / "chimes_lsq"
FM_SETUP = DATA / "fm_setup"
H2O_XYZF = "h2o-2bcheby/inputs/input.xyzf.gz"  # the one input.xyzf shared by the four water tests


@dataclass(frozen=True)
class Case:
    inputs: dict  # training file name (as fm_setup.in / traj_list.dat name it) -> gz file under LSQ
    b: str  # b.txt(.gz) under LSQ
    force: str  # force.txt(.gz) under LSQ
    fitcoul: bool = False  # FITCOUL true: charge products fitted (Ewald columns and charge-constraint rows)
    long_manybody: bool = False  # SPECIAL many-body S_MAXIM above the 2-body S_MAXIM
    slow: bool = False  # building the rows takes more than a few seconds


CASES = {
    "fitstrs": Case({"run_5.OUTCAR.xyzf": "fitstrs/inputs/run_5.OUTCAR.xyzf.gz"},
                    "fitstrs/correct_output/b.txt.gz", "fitstrs/correct_output/force.txt.gz", slow=True),
    "h2o-2bcheby": Case({"input.xyzf": H2O_XYZF}, "h2o-2bcheby/correct_output/b.txt.gz",
                        "h2o-2bcheby/correct_output/force.txt.gz", fitcoul=True),
    "h2o-3bcheby": Case({"input.xyzf": H2O_XYZF}, "h2o-3bcheby/correct_output/b.txt.gz",
                        "h2o-3bcheby/correct_output/force.txt.gz", fitcoul=True, slow=True),
    # h2o-4bcheby's b.txt is byte-identical to h2o-3bcheby's (same frames): stored once
    "h2o-4bcheby": Case({"input.xyzf": H2O_XYZF}, "h2o-3bcheby/correct_output/b.txt.gz",
                        "h2o-4bcheby/correct_output/force.txt.gz", fitcoul=True, slow=True),
    "nonorth2": Case({"input.xyzf": "nonorth2/inputs/input.xyzf.gz"}, "nonorth2/correct_output/b.txt.gz",
                     "nonorth2/correct_output/force.txt.gz"),
    "special3b": Case({"9350.combine-scs-2-a.fit.xyzf": "special3b/inputs/9350.combine-scs-2-a.fit.xyzf.gz"},
                      "special3b/correct_output/b.txt.gz", "special3b/correct_output/force.txt.gz", slow=True),
    "special4b": Case({"input.xyzf": H2O_XYZF}, "special4b/correct_output/b.txt.gz",
                      "special4b/correct_output/force.txt.gz", long_manybody=True, slow=True),
    "stress-and-ener-2b1": Case(
        {"phen_res-300F_dt-0.1_fullstress_energy5F.xyzf":
         "stress-and-ener-2b1/inputs/phen_res-300F_dt-0.1_fullstress_energy5F.xyzf.gz"},
        "stress-and-ener-2b1/correct_output/b.txt.gz", "stress-and-ener-2b1/correct_output/force.txt.gz"),
    "test_4atoms": Case({"dump.xyzf": "test_4atoms/inputs/dump.xyzf.gz"}, "test_4atoms/correct_output/b.txt.gz",
                        "test_4atoms/correct_output/force.txt.gz"),
    "two-traj-files": Case({"064_atoms_9_frames.xyzf": "two-traj-files/inputs/064_atoms_9_frames.xyzf.gz",
                            "128_atoms_5_frames.xyzf": "two-traj-files/inputs/128_atoms_5_frames.xyzf.gz"},
                           "two-traj-files/correct_output/b.txt.gz", "two-traj-files/correct_output/force.txt.gz",
                           slow=True),
}


def _params(names):
    return [pytest.param(n, id=n, marks=[pytest.mark.slow] if CASES[n].slow else []) for n in names]


ALL = list(CASES)
WITH_CHARGES = [n for n in ALL if CASES[n].fitcoul]


def _reference(name: str, filename: str) -> Path:
    """``tests/data/chimes_lsq/<name>/correct_output/<filename>`` or its ``.gz`` copy."""
    base = LSQ / name / "correct_output"
    for path in (base / filename, base / f"{filename}.gz"):
        if path.is_file():
            return path
    raise FileNotFoundError(f"no reference {filename} for {name} in {base}")


def _reference_bytes(name: str, filename: str) -> bytes:
    path = _reference(name, filename)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return handle.read()


# ------------------------------------------------------------------------------------------ building (cached)
@dataclass
class Built:
    setup: object
    basis: object
    builder: DesignBuilder
    frames: list  # (global index, TrajectorySource, XyzfFrame)
    slices: list  # row range of every frame in A / b
    A: np.ndarray  # frame rows, then (FITCOUL) the charge-constraint rows, as chimes_lsq writes them
    b: np.ndarray
    classes: np.ndarray


def _setup_folder(name: str, folder: Path) -> Path:
    """fm_setup.in (+ traj_list.dat) of the test and its decompressed training files, in ``folder``."""
    for src in (FM_SETUP / name).iterdir():
        shutil.copyfile(src, folder / src.name)
    for target, gz in CASES[name].inputs.items():
        with gzip.open(LSQ / gz, "rb") as fin, open(folder / target, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    return folder / "fm_setup.in"


@pytest.fixture(scope="module")
def setup_of(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            path = _setup_folder(name, tmp_path_factory.mktemp(name))
            case = CASES[name]
            cache[name] = read_fm_setup(path, allow_long_manybody=case.long_manybody)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def built(setup_of):
    cache = {}

    def get(name) -> Built:
        if name not in cache:
            setup = setup_of(name)
            basis = build_basis(setup)
            builder = DesignBuilder(basis, setup.fit_energy)
            frames = list(setup.iter_frames())
            blocks, bs, cls, slices = [], [], [], []
            start = 0
            for i, src, frame in frames:
                rows = builder.frame_rows(frame, setup.stress_mode(i), setup.fits_energy(i), src.flags)
                blocks.append(rows.A)
                bs.append(rows.b)
                cls.append(rows.classes)
                slices.append(slice(start, start + len(rows.b)))
                start += len(rows.b)
            Ac, bc = builder.constraint_rows(setup.charge_constraints if setup.fit_coulomb else [])
            blocks.append(Ac)
            bs.append(bc)
            cls.append(np.full(len(bc), CONSTRAINT, np.int8))
            A = np.vstack(blocks)
            cache[name] = Built(setup, basis, builder, frames, slices, A, np.concatenate(bs), np.concatenate(cls))
        return cache[name]

    return get


# ------------------------------------------------------------------------------------------ 1. header and map
@pytest.mark.parametrize("name", ALL)
def test_params_header_and_map_byte_for_byte(name, setup_of):
    """``params.header`` and ``ff_groups.map`` written from our skeleton equal chimes_lsq's, byte for byte."""
    basis = build_basis(setup_of(name))
    assert format_params_header(basis).encode() == _reference_bytes(name, "params.header")
    assert format_ff_groups_map(basis).encode() == _reference_bytes(name, "ff_groups.map")


# ------------------------------------------------------------------------------------------ 2. targets b
@pytest.mark.parametrize("name", _params(ALL))
def test_b_equals_reference(name, built):
    """Every target (force, stress, energy rows; same order) equals b.txt; the row count is that of b.txt.

    FITCOUL tests: chimes_lsq appends one row per ``CHARGE CONSTRAINTS`` line after the frame rows (the
    constraint's coefficients in the charge-product columns, its value in b); ours are in the same place."""
    got = built(name)
    bref = read_b_txt(LSQ / CASES[name].b)
    assert len(got.b) == len(bref) == got.A.shape[0]
    np.testing.assert_allclose(got.b, bref, rtol=1e-12, atol=1e-12 * np.abs(bref).max())
    ncon = int(np.sum(got.classes == CONSTRAINT))
    assert ncon == (2 if CASES[name].fitcoul else 0)
    if ncon:
        assert np.all(got.classes[:-ncon] == FORCE)  # water tests: forces only
        c0 = got.builder.layout.charge_offset
        assert c0 == got.builder.ncols - len(got.basis.pairs)
        assert np.all(got.A[-ncon:, :c0] == 0.0)  # constraint rows touch the charge columns only


# ------------------------------------------------------------------------------------------ 3. A x and the SVD fit
def _printed_half_ulp(path: Path) -> np.ndarray:
    """Half a unit in the last printed place of every ``%13.6e`` value of a force.txt file."""
    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as handle:
        tokens = handle.read().split()
    mantissa_digits = {len(t.split("e")[0].lstrip("-+").split(".")[1]) for t in tokens}
    assert mantissa_digits == {6}, "force.txt is written %13.6e (6 decimals in the mantissa)"
    exponents = np.array([int(t.split("e")[1]) for t in tokens])
    return 0.5 * 10.0 ** (exponents - 6)


@pytest.mark.parametrize("name", _params(ALL))
def test_A_times_reference_x_gives_force_txt(name, built):
    """A x_ref equals force.txt to its printed precision.

    force.txt is chimes_lsq.py's ``A x`` written ``%13.6e`` (7 significant digits), so every value may be
    off by half a unit in its 6th decimal (<= 5e-7 relative).  x_ref (test_suite_params.txt, ``%21.13e``) is
    itself rounded at 14 digits, which we allow for through |A| |x| * 1e-12.  FITCOUL tests include the
    Ewald charge-product columns (chimes_lsq's truncation of the sum, :mod:`aiida_chimes.chimes.ewald`) and the
    charge-constraint rows: a converged Ewald sum would miss by up to ~1e-3 relative, far outside this bound.
    """
    got = built(name)
    x = read_test_suite_params(_reference(name, "test_suite_params.txt"))
    assert got.A.shape[1] == len(x) == got.builder.ncols
    path = LSQ / CASES[name].force
    y = read_force_txt(path)
    assert len(y) == got.A.shape[0]
    tol = _printed_half_ulp(path) * (1 + 1e-9) + 1e-12 * (np.abs(got.A) @ np.abs(x))
    err = np.abs(got.A @ x - y)
    assert np.all(err <= tol), f"worst row {np.argmax(err / tol)}: {np.max(err / tol):.3g} x tolerance"


def _svd_solve(A, b, eps):
    """x = V S^+ U^T b keeping the singular values s > eps * max(s) (chimes_lsq.py --algorithm svd)."""
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    keep = s > eps * s[0]
    return Vt[keep].T @ ((U[:, keep].T @ b) / s[keep])


@pytest.mark.parametrize("name", _params(ALL))
def test_svd_fit_reproduces_reference_x(name, built):
    """Our dense SVD solution of (A, b), and that of the compact FitSystem solver, equal test_suite_params.txt
    to 1e-6 relative to max|x| (they agree to ~1e-12 today)."""
    got = built(name)
    x_ref = read_test_suite_params(_reference(name, "test_suite_params.txt"))
    scale = np.abs(x_ref).max()
    x = _svd_solve(got.A, got.b, 1e-5)
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-6 * scale)

    system = FitSystem(got.A.shape[1])
    system.add_rows(got.A, got.b, got.classes)
    result = solve(system, "svd", eps=1e-5)
    np.testing.assert_allclose(result.x, x_ref, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("name", WITH_CHARGES)
def test_fitcoul_columns(name, setup_of):
    """FITCOUL tests: the reference x has our columns, the charge products (one per pair, in the params pair
    order) after the many-body columns, as :func:`column_labels` and the design layout both say."""
    setup = setup_of(name)
    basis = build_basis(setup)
    builder = DesignBuilder(basis, setup.fit_energy)
    x_ref = read_test_suite_params(_reference(name, "test_suite_params.txt"))
    npairs = len(basis.pairs)
    assert len(x_ref) == n_columns(basis, setup.fit_energy) == builder.ncols
    assert builder.layout.charge_offset == builder.ncols - npairs
    labels = column_labels(basis, setup.fit_energy)
    assert labels[builder.ncols - npairs:] == [f"Q {q.name}" for q in basis.pairs]
    assert builder.layout.labels[builder.ncols - npairs:] == [f"Q {q.name}" for q in basis.pairs]


# ------------------------------------------------------------------------------------------ 4. evaluator vs A x
def _close_pairs(frame, basis, penalty_dist) -> tuple[int, set]:
    """(number of pairs, atoms in them) closer than S_MINIM + penalty distance of their pair type."""
    from ase import Atoms

    atoms = Atoms(frame.symbols, positions=frame.positions, cell=frame.cell, pbc=True)
    rmin = {}
    for q in basis.pairs:
        rmin[(q.atom1, q.atom2)] = rmin[(q.atom2, q.atom1)] = q.s_minim + penalty_dist
    i, j, d = neighbor_list("ijd", atoms, max(rmin.values()))
    sym = frame.symbols
    close = np.array([d[k] < rmin[(sym[i[k]], sym[j[k]])] for k in range(len(d))], dtype=bool)
    return int(close.sum()) // 2, set(i[close].tolist()) | set(j[close].tolist())


EVALUATED = ["nonorth2", "test_4atoms", "stress-and-ener-2b1", "two-traj-files", "special3b", "special4b", "fitstrs",
             "h2o-2bcheby", "h2o-3bcheby", "h2o-4bcheby"]


@pytest.mark.parametrize("name", _params(EVALUATED))
def test_evaluator_reproduces_A_x(name, built):
    """The reference x filled into our skeleton and evaluated by the ChIMES evaluator on every training frame
    gives forces, stresses and energies equal to that frame's rows times x (1e-9 relative to the largest
    value of the frame and class): a fitted potential predicts what the fit assumed.  For the FITCOUL water
    fits the forces include the Ewald Coulomb part of the fitted charge products (truncated as in the fit).

    Exception (chimes_lsq's fit convention, shared/notes/chimes.md): a 2-body pair with r <= S_MINIM is left
    out of the fit, while the evaluator extrapolates it, and pairs with r < S_MINIM + penalty distance
    (default 0.01 A) get the evaluator's repulsive penalty.  Such a pair only changes the forces on its two
    atoms, so those atoms are left out of the force comparison (frame energy / stress are then not compared;
    only special3b has such pairs: 5 of its 100 frames, 2 atoms each).  Many-body distances below the inner
    cutoff are treated alike by the fit and the evaluator, so nothing else is excluded.
    """
    got = built(name)
    x = read_test_suite_params(_reference(name, "test_suite_params.txt"))
    model = ChimesModel(fill_coefficients(got.basis, x, fit_energy=got.setup.fit_energy))
    penalty_dist = got.basis.penalty[0]
    excluded = {}
    for (index, _src, frame), rows in zip(got.frames, got.slices, strict=True):
        Ax = got.A[rows] @ x
        cls = got.classes[rows]
        res = model.evaluate(frame.symbols, frame.positions, frame.cell)
        npen, close = _close_pairs(frame, got.basis, penalty_dist)
        assert res.penalty_pairs == npen
        forces = res.forces.reshape(-1)
        ok = np.ones(len(forces), dtype=bool)
        if close:
            excluded[index] = sorted(close)
            for a in close:
                ok[3 * a: 3 * a + 3] = False
            # the excluded atoms do differ (otherwise the exclusion would not be needed)
            assert np.abs(forces - Ax[cls == FORCE])[~ok].max() > 1e-6
        fmax = np.abs(Ax[cls == FORCE]).max()
        np.testing.assert_allclose(forces[ok], Ax[cls == FORCE][ok], rtol=0, atol=1e-9 * fmax)
        if close:
            continue
        mode = got.setup.stress_mode(index)
        if mode != "none":
            idx = [(0, 0), (1, 1), (2, 2)] if mode == "diag" else [(a, c) for a in range(3) for c in range(3)]
            s = np.array([res.stress[a, c] for a, c in idx])
            np.testing.assert_allclose(s, Ax[cls == STRESS], rtol=0, atol=1e-9 * np.abs(s).max())
        if got.setup.fits_energy(index):
            e = Ax[cls == ENERGY]
            assert len(e) == 3  # the energy row is written three times
            np.testing.assert_allclose(e, res.energy, rtol=1e-9)
    if name == "special3b":
        assert excluded == {65: [4, 5], 71: [4, 12], 72: [4, 12], 94: [9, 19], 95: [9, 19]}
    else:
        assert excluded == {}


# ------------------------------------------------------------------------------------------ 5. nonorth2 A itself
def test_nonorth2_A_rows(built):
    """Our nonorth2 A equals chimes_lsq's A.txt (first 200 rows stored) to 1e-10; shape as dim.txt."""
    got = built("nonorth2")
    assert read_dim_txt(_reference("nonorth2", "dim.txt")) == (got.A.shape[1], got.A.shape[0])
    ref = read_A(_reference("nonorth2", "A.txt.aa.head200"))
    assert ref.shape == (200, got.A.shape[1])
    np.testing.assert_allclose(got.A[:200], ref, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------------------ 6. lsq2 solver variants
#: variant -> (our algorithm, its arguments, rows weighted by lsq2/weights.txt, tolerance on x / max|x_ref|)
LSQ2_VARIANTS = {
    "svd.1.0e-05": ("svd", {"eps": 1e-5}, False, 1e-9),
    "svd.weight": ("svd", {"eps": 1e-5}, True, 1e-9),
    "ridge.1.0e-03": ("ridge", {"alpha": 1e-3}, False, 1e-6),
    # RidgeCV picked alpha = 1e-6 among its 8 candidates (the file's header says so; our cross-validation picks
    # it too: test_lsq2_ridgecv_chooses_the_official_alpha); the solution at that alpha
    "ridgecv": ("ridge", {"alpha": 1e-6}, False, 1e-6),
    "lassolars.1.0e-04": ("lassolars", {"alpha": 1e-4}, False, 2e-3),
    "dlasso.read": ("dlasso", {"alpha": 1e-4, "normalize": True}, False, 1e-8),
    "dlasso.1.0e-04": ("dlasso", {"alpha": 1e-4}, False, 3e-3),
    "dlars.1.0e-04": ("dlars", {"alpha": 1e-4}, False, 1e-4),
}


def _lsq2_reference(variant: str) -> tuple[np.ndarray, float, int]:
    """(x, RMS error, number of fitting vars) of an official lsq2 params.<variant>.txt."""
    import re

    from aiida_chimes.chimes.params import parse_params
    from tests.chimes.test_lsq_files import _x_of

    text = gzip.open(LSQ / "lsq2" / "correct_output" / f"params.{variant}.txt.gz", "rt").read()
    rmse = float(re.search(r"^! RMS force error\s*=\s*(\S+)", text, re.M).group(1))
    nvars = int(re.search(r"^! number of fitting vars\s*=\s*(\S+)", text, re.M).group(1))
    return _x_of(parse_params(text)), rmse, nvars


@pytest.fixture(scope="module")
def lsq2_rows(built):
    """lsq2 is h2o-4bcheby with other solvers: same fm_setup.in but for comments, same input.xyzf and b.txt."""
    def body(path):
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]

    assert body(FM_SETUP / "lsq2" / "fm_setup.in") == body(FM_SETUP / "h2o-4bcheby" / "fm_setup.in")
    got = built("h2o-4bcheby")
    with gzip.open(LSQ / "lsq2" / "weights.txt.gz", "rt") as fh:
        w = np.loadtxt(fh)
    assert got.A.shape == (9506, 419) and w.shape == (9506,)
    return got, w


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(LSQ2_VARIANTS))
def test_lsq2_solver_variants_reproduce_official_fits(variant, lsq2_rows):
    """Each official lsq2 solver variant (chimes_lsq.py on the FITCOUL water 2+3+4-body A, charges included) is
    reproduced by our compact solver from our own A and b: x, the RMS error and the number of fitting variables
    printed in the file's header (5 significant digits).

    Tolerances on x (relative to max|x_ref|) are what each algorithm allows:
    * svd / svd with weights.txt: the same truncated pseudo-inverse (measured 5e-12);
    * ridge (sklearn ``Ridge``, normal equations with condition ~ s_max^2 / alpha = 4e12) and the ridgecv
      alpha: measured 1e-8 / 2e-8;
    * lassolars (sklearn ``LassoLars`` on the dense A; ours on Gram rows): the same 557-step path on
      unnormalised columns spanning 6 decades, whose round-off builds up along the path.  Last-digit changes in
      how G and A^T b are summed (the batch sizes in which Gram rows are formed: 8 to 128 rows, or the whole
      matrix) move x by 3e-5 to 5e-4 of max|x|, hence 2e-3;
    * dlasso / dlars (DLARS, distributed C++): DLARS ignores the correlation level and stops at the first path
      breakpoint whose objective (lambda = alpha) rose, returning that breakpoint (see test_dlars_reference.py).
      --normalize=y: measured 4e-11 (413 steps); --normalize=n, the LASSO path (558 steps) and the plain LAR
      path (197 steps, 66 coefficients crossing zero) on the unnormalised columns: 1e-4 to 1.3e-3 and 1.2e-5 to
      3.4e-5 over the same summation orders, round-off along the path as for lassolars, hence 3e-3 and 1e-4.
    """
    got, w = lsq2_rows
    algorithm, kwargs, weighted, tol = LSQ2_VARIANTS[variant]
    x_ref, rmse_ref, nvars_ref = _lsq2_reference(variant)
    system = FitSystem(got.A.shape[1])
    system.add_rows(got.A, got.b, got.classes, w if weighted else None)
    result = solve(system, algorithm, **kwargs)
    scale = np.abs(x_ref).max()
    assert np.abs(result.x - x_ref).max() <= tol * scale
    assert result.rmse == pytest.approx(rmse_ref, rel=1e-4)
    assert result.info["nvars"] == nvars_ref


@pytest.mark.slow
def test_lsq2_ridgecv_chooses_the_official_alpha(lsq2_rows):
    """ridgecv: chimes_lsq.py's ``RidgeCV(alphas, fit_intercept=False, cv=4)`` over 4 contiguous row folds of the
    unweighted A (charge-constraint rows included, last) picked alpha = 1e-6 (the file's header); ours picks the
    same, with every fold's R^2 equal to scikit-learn's ``cross_val_score`` of ``Ridge`` (measured 9e-10 relative;
    one fold, the last, scores about -1e4: the fits of the other folds extrapolate badly there), and its final
    solution is the official one (the ridgecv entry of LSQ2_VARIANTS)."""
    import re
    import warnings

    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    from aiida_chimes.chimes.solvers import RIDGECV_ALPHAS, kfold_bounds, ridge_cv_alpha

    got, _ = lsq2_rows
    text = gzip.open(LSQ / "lsq2" / "correct_output" / "params.ridgecv.txt.gz", "rt").read()
    assert float(re.search(r"^! ridge CV alpha =\s+(\S+)", text, re.M).group(1)) == 1e-6
    folds = []
    for start, stop in kfold_bounds(len(got.b), 4):
        fs = FitSystem(got.A.shape[1])
        fs.add_rows(got.A[start:stop], got.b[start:stop], got.classes[start:stop])
        folds.append(fs)
    alpha, scores = ridge_cv_alpha(folds)
    assert alpha == 1e-6
    for i, a in enumerate(RIDGECV_ALPHAS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about the conditioning of its normal equations
            ref = cross_val_score(Ridge(alpha=a, fit_intercept=False), got.A, got.b, cv=4)
        np.testing.assert_allclose(scores[i], ref, rtol=1e-8)  # sklearn: normal equations, rcond 1e-16
