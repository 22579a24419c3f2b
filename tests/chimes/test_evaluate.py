"""Energy, forces and stress of the numba evaluator (:mod:`aiida_chimes.chimes.evaluate`) and the ASE calculator.

The checks need no reference data: forces and stress must be the derivatives of the energy (central finite
differences, every official parameter file), the energy must be invariant under the Euclidean group, atom
permutations, periodic wrapping and supercell replication (a cell shorter than the cutoff is counted per
translation class), results must not depend on the number of threads, and the ASE calculator must be the same
numbers in eV.
"""

from __future__ import annotations

import functools
import itertools

import numba
import numpy as np
import pytest

from aiida_chimes.chimes.evaluate import ChimesModel
from aiida_chimes.chimes.units import EV_PER_KCALMOL
from tests.helpers import FORCE_FIELDS, force_field_path

LIQC = "published_params.liqC.2+3b.cubic.txt"
LIQC_2B = "published_params.liqC.2b.cubic.txt"
LIQCO = "published_params.liqCO.2+3b.cubic.txt"
CARBON_4B = "published_params.Carbon-2.0.Small.2+3+4b.Tersoff.txt"
HN3 = "published_params.HN3.2+3+4b.Tersoff.special.offsets.txt"

#: Finite-difference steps: atom displacement (A) and strain.
H_POS = 1e-5
H_STRAIN = 1e-6
#: Pair distances closer than this to a radius where the energy is only C1 (inner cutoff, penalty onset, outer
#: and Tersoff onset radii) are avoided: there the second derivative jumps and a central difference spanning
#: the kink is only first-order accurate.  The stencil is ~1e-5 A wide, so 1e-3 A is a wide margin.
KINK_MARGIN = 1e-3


@functools.cache
def model(name: str) -> ChimesModel:
    return ChimesModel(force_field_path(name))


# ====================================================================== configuration helpers
# These read only the parameter-file model (ChimesParams), not the evaluator's compiled tables.
@functools.cache
def pair_table(name: str) -> np.ndarray:
    """Pair-type index of every (type, type) combination, types in the order of ``ChimesModel.symbols``."""
    m = model(name)
    return np.array([[m.params.pair_index(a, b) for b in m.symbols] for a in m.symbols])


@functools.cache
def body_cutoffs(name: str) -> list[float]:
    """Outer cutoff of each many-body order present (SPECIAL ... S_MAXIM when given, else the pair cutoff)."""
    p = model(name).params
    out = []
    for body, order in zip(("3B", "4B"), p.orders[1:], strict=True):
        if order == 0:
            continue
        spec = p.special.get((body, "S_MAXIM"))
        if spec is None:
            out.append(p.max_cutoff)
        elif spec.mode == "ALL":
            out.append(spec.value)
        else:
            out.append(max(v for entry in spec.entries for v in entry[2]))
    return out


def many_body_cutoff(name: str) -> float:
    """Largest 3-/4-body cutoff of a model (its 2-body cutoff for a 2-body model)."""
    return max(body_cutoffs(name) or [model(name).params.max_cutoff])


@functools.cache
def critical_radii(name: str) -> dict[int, np.ndarray]:
    """For each pair type, the radii where the energy may be only C1: its inner cutoff, penalty onset, outer
    cutoff, every SPECIAL 3B/4B cutoff (conservatively for every pair type) and their Tersoff onsets."""
    p = model(name).params
    pen_dist = p.penalty[0]
    fvar = float(p.fcut_var or 0.0) if p.fcut_type == "TERSOFF" else 0.0
    special = {v for spec in p.special.values() for v in ([spec.value] if spec.mode == "ALL" else [])}
    special |= {v for spec in p.special.values() for entry in spec.entries for v in entry[2]}
    crit = {}
    for k, q in enumerate(p.pairs):
        outer = {q.s_maxim} | special
        radii = {q.s_minim, q.s_minim + pen_dist} | outer | {r - fvar * r for r in outer}
        crit[k] = np.array(sorted(radii))
    return crit


def heights(cell) -> np.ndarray:
    """Perpendicular heights of a cell (rows = lattice vectors)."""
    cell = np.asarray(cell)
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(cell[(a + 1) % 3], cell[(a + 2) % 3])) for a in range(3)])


def image_pairs(positions, cell, rmax):
    """All pairs (i <= j, lattice shift) at distance < rmax, each unordered pair of sites once: (i, j, r)."""
    positions = np.asarray(positions)
    n = len(positions)
    if cell is None:
        shifts = np.zeros((1, 3))
    else:
        reach = np.ceil(rmax / heights(cell)).astype(int) + 1
        grid = np.array(list(itertools.product(*(range(-k, k + 1) for k in reach))), dtype=float)
        shifts = grid @ np.asarray(cell)
    out = []
    for i in range(n):
        for j in range(i, n):
            d = positions[j] + shifts - positions[i]
            r = np.linalg.norm(d, axis=1)
            keep = (r < rmax) & (r > 1e-9)
            if i == j:  # a self-image pair appears with shifts +t and -t
                keep &= np.arange(len(r)) < len(r) // 2
            out.extend((i, j, x) for x in r[keep])
    return out


def random_cell(rng, target_heights) -> np.ndarray:
    """A sheared (triclinic) cell with the given perpendicular heights.

    Scaling lattice vector a changes only the height along a, so each row is rescaled to its target height.
    """
    while True:
        cell = np.eye(3) + rng.uniform(-0.45, 0.45, (3, 3))
        h = heights(cell)
        if h.min() > 0.45 * np.linalg.norm(cell, axis=1).max():  # not too flat
            break
    return cell * (np.asarray(target_heights) / h)[:, None]


def random_config(name: str, seed: int, natoms: int, height: float, periodic: bool = True):
    """A small random configuration of model ``name`` that exercises every regime of the energy.

    Atom types are mixed (all types present when natoms allows), the cell is triclinic with heights in
    [height, 1.2 height] (shorter than the cutoff: periodic images and self images interact), two pairs sit
    inside the 2-body penalty region (below the inner cutoff s_minim), other pairs fall inside and beyond the
    many-body cutoffs, and no distance lies within KINK_MARGIN of a radius where the energy is only C1.
    Returns (symbols, positions, cell or None).
    """
    m = model(name)
    p = m.params
    rng = np.random.default_rng(seed)
    nt = len(m.symbols)
    pair_of = pair_table(name)
    crit = critical_radii(name)
    pen_dist = p.penalty[0]
    mb_cut = many_body_cutoff(name)
    mb_min = min(body_cutoffs(name) or [p.max_cutoff])
    # pair types with a real 2-body interval (TiO2 has an O-O "pair" with s_minim == s_maxim)
    live = [k for k, q in enumerate(p.pairs) if q.s_maxim > q.s_minim + 0.5]
    for _attempt in range(5000):
        types = np.concatenate([rng.permutation(nt), rng.integers(0, nt, max(0, natoms - nt))])[:natoms]
        if periodic:
            cell = random_cell(rng, height * rng.uniform(1.0, 1.2, 3))
            pos = rng.uniform(0, 1, (natoms, 3)) @ cell
        else:
            cell = None
            pos = rng.uniform(0, height, (natoms, 3))
        # two close pairs (0, 1) and (2, 3): inside the penalty region, in the inner (smoothed) range r < s_minim
        for a, b in ((0, 1), (2, 3)):
            k = int(pair_of[types[a], types[b]])
            if k not in live:
                cand = [(x, y) for x in range(nt) for y in range(nt) if pair_of[x, y] in live]
                types[a], types[b] = cand[rng.integers(len(cand))]
                k = int(pair_of[types[a], types[b]])
            u = rng.normal(size=3)
            pos[b] = pos[a] + u / np.linalg.norm(u) * (p.pairs[k].s_minim - rng.uniform(0.02, 0.08))
        pairs = image_pairs(pos, cell, p.max_cutoff + 1.0)
        ok = True
        n_pen = n_in = n_out = 0
        for i, j, r in pairs:
            k = int(pair_of[types[i], types[j]])
            if r < p.pairs[k].s_minim - 0.1 or np.abs(crit[k] - r).min() < KINK_MARGIN:
                ok = False
                break
            if r < p.pairs[k].s_minim + pen_dist and k in live:
                n_pen += 1
            elif r < mb_min:
                n_in += 1
            elif r > mb_cut:
                n_out += 1
        if ok and n_pen >= 2 and n_in >= 3 and n_out >= (2 if periodic else 1):
            symbols = [m.symbols[t] for t in types]
            return symbols, pos, cell
    raise RuntimeError(f"no valid random configuration for {name}")


# ====================================================================== finite differences
def fd_forces(m: ChimesModel, symbols, pos, cell, pbc=True, h=H_POS) -> np.ndarray:
    """-dE/dx by central differences."""
    out = np.zeros_like(pos)
    for i in range(len(pos)):
        for d in range(3):
            e = []
            for sgn in (1, -1):
                x = pos.copy()
                x[i, d] += sgn * h
                e.append(m.evaluate(symbols, x, cell, pbc=pbc).energy)
            out[i, d] = -(e[0] - e[1]) / (2 * h)
    return out


def fd_strain_derivative(m: ChimesModel, symbols, pos, cell, h=H_STRAIN) -> np.ndarray:
    """dE/d(eps) for the symmetric strain eps (cell' = cell (I + eps), pos' = pos (I + eps)), all 9 entries."""
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(a, 3):
            e = []
            for sgn in (1, -1):
                eps = np.zeros((3, 3))
                eps[a, b] += 0.5 * sgn * h
                eps[b, a] += 0.5 * sgn * h
                f = np.eye(3) + eps
                e.append(m.evaluate(symbols, pos @ f, cell @ f).energy)
            out[a, b] = out[b, a] = (e[0] - e[1]) / (2 * h)
    return out


def supercell(symbols, pos, cell, reps):
    """Replicate a cell reps = (n1, n2, n3) times; copy t = (i, j, k) (row-major) holds atoms t*n .. t*n + n - 1."""
    shifts = np.array(list(itertools.product(*(range(k) for k in reps))), dtype=float) @ cell
    big_pos = np.concatenate([pos + s for s in shifts])
    return list(symbols) * len(shifts), big_pos, np.diag(reps).astype(float) @ cell, len(shifts)


def random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def open_box(name: str) -> float:
    """Edge of the box an open cluster is drawn in: some pairs end up beyond the many-body cutoff."""
    return max(3.0, 0.7 * many_body_cutoff(name))


def fd_case(name: str) -> tuple[int, float]:
    """(number of atoms, target cell height) of the finite-difference configuration of a model.

    The height is 0.85 of the largest many-body cutoff, kept in [2.6, 4.0] A: always shorter than the cutoff
    (images and self images interact) and small enough that the 4-body files (~1e4 rows per cluster type)
    stay fast.
    """
    natoms = 5 if model(name).params.orders[2] > 0 else 6
    return natoms, float(np.clip(0.85 * many_body_cutoff(name), 2.6, 4.0))


def assert_derivatives(m: ChimesModel, symbols, pos, cell, pbc=True):
    """Forces (and stress when periodic) of ``m`` against central differences of its energy.

    Tolerance: ``1e-6 * max(1, max|F|)`` plus an absolute round-off term (same form for -V * stress).
    Central differences err by ~h^2/6 * E''' (truncation) plus ~1e-16 |E| / h (round-off).  The stiffest
    third derivatives come from the penalty A (rp)^3 (E''' = 6A against a force 3A rp^2: relative error
    h^2 / (3 rp^2) <= 1e-7 for the rp >= 0.02 A used here, also for A = 1e8) and from the inner smoothing
    below s_minim, whose 0.01 A damping length gives E''' ~ |F| / 1e-4 (relative ~2e-7).  Observed errors
    are <= 1e-7 relative over many seeds; a wrong term (a missing image, a factor of 2 in a cluster weight,
    a wrong sign in a virial) shows up at 1e-3 or more.
    """
    res = m.evaluate(symbols, pos, cell, pbc=pbc)
    assert np.isfinite(res.energy) and np.all(np.isfinite(res.forces))
    roundoff = 1e-13 * abs(res.energy) / H_POS  # ~ 1000 ulp of |E| over the step
    fd = fd_forces(m, symbols, pos, cell, pbc=pbc)
    fscale = max(1.0, np.abs(res.forces).max())
    err = np.abs(fd - res.forces)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= 1e-6 * fscale + roundoff + 1e-6, (
        f"force of atom {worst[0]} component {'xyz'[worst[1]]}: analytic {res.forces[worst]!r}, "
        f"finite difference {fd[worst]!r} (max |F| {fscale:.3g})")
    if not pbc:
        assert res.stress is None and res.volume is None
        return res
    assert res.volume == pytest.approx(abs(np.linalg.det(cell)), rel=1e-14)
    np.testing.assert_array_equal(res.stress, res.stress.T)
    virial = -res.volume * res.stress  # = dE/d(eps)
    dedeps = fd_strain_derivative(m, symbols, pos, cell)
    wscale = max(1.0, np.abs(virial).max())
    err = np.abs(dedeps - virial)
    worst = np.unravel_index(err.argmax(), err.shape)
    assert err.max() <= 1e-6 * wscale + 1e-13 * abs(res.energy) / H_STRAIN + 1e-6, (
        f"stress {'xyz'[worst[0]]}{'xyz'[worst[1]]}: analytic -V*stress {virial[worst]!r}, "
        f"finite difference dE/deps {dedeps[worst]!r} (max {wscale:.3g})")
    return res


def assert_consistent(res):
    """Per-atom energies add up to the energy; forces add up to zero (Newton's third law, every image)."""
    assert res.energies.sum() == pytest.approx(res.energy, rel=1e-12, abs=1e-9)
    fscale = max(1.0, np.abs(res.forces).max())
    assert np.abs(res.forces.sum(axis=0)).max() <= 1e-12 * fscale * len(res.forces)


# ====================================================================== 1. finite differences, every file
@pytest.mark.parametrize("name", FORCE_FIELDS)
def test_forces_and_stress_match_finite_differences(name):
    m = model(name)
    natoms, height = fd_case(name)
    symbols, pos, cell = random_config(name, seed=1, natoms=natoms, height=height)
    assert set(symbols) == set(m.symbols) or natoms < len(m.symbols)
    assert heights(cell).min() < m.params.max_cutoff
    res = assert_derivatives(m, symbols, pos, cell)
    assert res.penalty_pairs >= 2
    assert_consistent(res)


# ====================================================================== 2. invariances
INVARIANCE_MODELS = [LIQC, LIQCO, CARBON_4B]


@functools.cache
def reference(name: str):
    """A random configuration of ``name`` (cell shorter than the cutoff) and its evaluation."""
    symbols, pos, cell = random_config(name, seed=7, natoms=fd_case(name)[0], height=fd_case(name)[1])
    return symbols, pos, cell, model(name).evaluate(symbols, pos, cell)


def assert_same(res, ref, forces=None, stress=None, energies=None, rtol=1e-10):
    """``res`` equals ``ref`` (optionally transformed forces / stress / per-atom energies) to ``rtol``."""
    forces = ref.forces if forces is None else forces
    stress = ref.stress if stress is None else stress
    energies = ref.energies if energies is None else energies
    escale = max(1.0, np.abs(ref.energies).max())
    assert res.energy == pytest.approx(ref.energy, rel=rtol, abs=rtol * escale)
    np.testing.assert_allclose(res.energies, energies, rtol=0, atol=rtol * escale)
    np.testing.assert_allclose(res.forces, forces, rtol=0, atol=rtol * max(1.0, np.abs(forces).max()))
    if stress is not None:
        np.testing.assert_allclose(res.stress, stress, rtol=0, atol=rtol * max(1e-3, np.abs(stress).max()))
    assert res.penalty_pairs == ref.penalty_pairs


@pytest.mark.parametrize("name", INVARIANCE_MODELS)
def test_translation_invariance(name):
    symbols, pos, cell, ref = reference(name)
    shift = np.random.default_rng(11).normal(size=3) * 3.7  # not a lattice vector
    assert_same(model(name).evaluate(symbols, pos + shift, cell), ref)


@pytest.mark.parametrize("name", INVARIANCE_MODELS)
def test_rotation_covariance(name):
    """Rotating cell and atoms: same energy, forces rotate (F R^T), stress transforms as R S R^T."""
    symbols, pos, cell, ref = reference(name)
    rot = random_rotation(np.random.default_rng(12))
    res = model(name).evaluate(symbols, pos @ rot.T, cell @ rot.T)
    assert_same(res, ref, forces=ref.forces @ rot.T, stress=rot @ ref.stress @ rot.T)


@pytest.mark.parametrize("name", INVARIANCE_MODELS)
def test_permutation_invariance(name):
    symbols, pos, cell, ref = reference(name)
    perm = np.random.default_rng(13).permutation(len(symbols))
    res = model(name).evaluate([symbols[k] for k in perm], pos[perm], cell)
    assert_same(res, ref, forces=ref.forces[perm], energies=ref.energies[perm])


@pytest.mark.parametrize("name", INVARIANCE_MODELS)
def test_wrapping_invariance(name):
    """Atoms moved by whole lattice vectors (far outside the cell) give the same results."""
    symbols, pos, cell, ref = reference(name)
    moves = np.random.default_rng(14).integers(-3, 4, (len(symbols), 3))
    moves[0] = (5, -4, 7)
    assert_same(model(name).evaluate(symbols, pos + moves @ cell, cell), ref)


@pytest.mark.parametrize("reps", [(2, 1, 2), (3, 3, 3)], ids=["2x1x2", "3x3x3"])
@pytest.mark.parametrize("name", INVARIANCE_MODELS)
def test_supercell_replication(name, reps):
    """A cell shorter than the cutoff is counted per translation class: a supercell gives the same energy per
    atom, the same stress and tiled forces and per-atom energies."""
    symbols, pos, cell, ref = reference(name)
    assert heights(cell).min() < model(name).params.max_cutoff
    big_symbols, big_pos, big_cell, ncopy = supercell(symbols, pos, cell, reps)
    res = model(name).evaluate(big_symbols, big_pos, big_cell)
    assert res.energy / ncopy == pytest.approx(ref.energy, rel=1e-9)
    escale = max(1.0, np.abs(ref.energies).max())
    np.testing.assert_allclose(res.energies, np.tile(ref.energies, ncopy), rtol=0, atol=1e-9 * escale)
    fscale = max(1.0, np.abs(ref.forces).max())
    np.testing.assert_allclose(res.forces, np.tile(ref.forces, (ncopy, 1)), rtol=0, atol=1e-9 * fscale)
    np.testing.assert_allclose(res.stress, ref.stress, rtol=0, atol=1e-9 * np.abs(ref.stress).max())
    assert res.volume == pytest.approx(ncopy * ref.volume, rel=1e-12)
    assert res.penalty_pairs == ncopy * ref.penalty_pairs


# ====================================================================== 3. cells smaller than the cutoff
def test_one_atom_simple_cubic_carbon():
    """One C atom in a 2.5 A cube (cutoff 3.15 A): only self images interact.

    5.128699 kcal/mol per cell is the official calculator's value with small = true (a supercell, per cell);
    with small = false it gives 10.257399, counting every self-image pair twice; ``serial_counting`` mimics
    that.
    """
    m = model(LIQC_2B)
    cell = np.eye(3) * 2.5
    res = m.evaluate(["C"], np.zeros((1, 3)), cell)
    assert res.energy == pytest.approx(5.128699, abs=2e-6)
    assert res.energies[0] == pytest.approx(res.energy, rel=1e-14)
    np.testing.assert_allclose(res.forces, 0.0, atol=1e-12)
    assert np.allclose(res.stress, res.stress[0, 0] * np.eye(3), rtol=0, atol=1e-12)
    assert m.evaluate(["C"], np.zeros((1, 3)), cell, serial_counting=True).energy == pytest.approx(10.257399, abs=2e-6)
    big = m.evaluate(*supercell(["C"], np.zeros((1, 3)), cell, (4, 4, 4))[:3])
    assert big.energy / 64 == pytest.approx(res.energy, rel=1e-9)
    np.testing.assert_allclose(big.stress, res.stress, rtol=0, atol=1e-9 * np.abs(res.stress).max())
    np.testing.assert_allclose(big.forces, 0.0, atol=1e-9)
    assert_derivatives(m, ["C"], np.zeros((1, 3)), cell)


def diamond_co():
    """A zinc-blende C/O cell (fcc primitive, a = 3.57 A, heights 2.06 A, far below the 6.5 A 3-body cutoff),
    atoms displaced off their symmetric sites so the forces do not vanish."""
    a = 3.57
    cell = 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    pos = np.array([[0.0, 0.0, 0.0], [0.25 * a] * 3]) + np.random.default_rng(5).normal(scale=0.05, size=(2, 3))
    return ["C", "O"], pos, cell


def test_two_atom_diamond_cell_equals_supercell():
    m = model(LIQCO)
    symbols, pos, cell = diamond_co()
    res = assert_derivatives(m, symbols, pos, cell)
    assert_consistent(res)
    assert np.abs(res.forces).max() > 0.1
    big_symbols, big_pos, big_cell, ncopy = supercell(symbols, pos, cell, (3, 3, 3))
    big = m.evaluate(big_symbols, big_pos, big_cell)
    assert big.energy / ncopy == pytest.approx(res.energy, rel=1e-9)
    np.testing.assert_allclose(big.forces, np.tile(res.forces, (ncopy, 1)), rtol=0,
                               atol=1e-9 * np.abs(res.forces).max())
    np.testing.assert_allclose(big.stress, res.stress, rtol=0, atol=1e-9 * np.abs(res.stress).max())


# ====================================================================== 4. threads and chunks
@pytest.fixture
def restore_threads():
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("name", [LIQCO, HN3])
def test_results_do_not_depend_on_thread_count(name, restore_threads):
    """Fixed chunks reduced in a fixed order: bit-identical results with 1 or 2 threads."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba is limited to one thread here")
    m = model(name)
    symbols, pos, cell = random_config(name, seed=3, natoms=8, height=4.0)
    out = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        out.append(m.evaluate(symbols, pos, cell))
    one, two = out
    assert one.energy == two.energy
    np.testing.assert_array_equal(one.forces, two.forces)
    np.testing.assert_array_equal(one.stress, two.stress)
    np.testing.assert_array_equal(one.energies, two.energies)


@pytest.mark.parametrize("name", [LIQCO, HN3])
def test_chunk_count_changes_only_rounding(name):
    m = model(name)
    symbols, pos, cell = random_config(name, seed=3, natoms=8, height=4.0)
    assert_same(m.evaluate(symbols, pos, cell, chunks=1), m.evaluate(symbols, pos, cell, chunks=16))


# ====================================================================== 5. ASE calculator
def ase_atoms(name: str, seed: int = 21):
    import ase

    from aiida_chimes.chimes.calculator import ChimesCalculator

    symbols, pos, cell = random_config(name, seed=seed, natoms=6, height=4.0)
    atoms = ase.Atoms(symbols, positions=pos, cell=cell, pbc=True)
    atoms.calc = ChimesCalculator(str(force_field_path(name)))
    return atoms


@pytest.mark.parametrize("name", [LIQCO, HN3])
def test_ase_calculator_units_and_conventions(name):
    atoms = ase_atoms(name)
    ref = model(name).evaluate(atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array)
    assert EV_PER_KCALMOL == pytest.approx(1 / 23.0605, rel=1e-5)
    assert atoms.get_potential_energy() == pytest.approx(ref.energy * EV_PER_KCALMOL, rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == atoms.get_potential_energy()
    assert atoms.calc.results["free_energy"] == atoms.calc.results["energy"]
    np.testing.assert_allclose(atoms.get_forces(), ref.forces * EV_PER_KCALMOL, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(atoms.get_potential_energies(), ref.energies * EV_PER_KCALMOL, rtol=1e-12,
                               atol=1e-14)
    s = -ref.stress * EV_PER_KCALMOL  # ASE sign (tensile positive) and Voigt order xx yy zz yz xz xy
    expected = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    np.testing.assert_allclose(atoms.get_stress(), expected, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), s, rtol=1e-12, atol=1e-16)
    assert atoms.calc.penalty_pairs == ref.penalty_pairs


@pytest.mark.parametrize("name", [LIQCO, HN3])
def test_ase_numerical_forces_and_stress(name):
    """ASE's own finite differences (``ase.calculators.fd``, what the deprecated
    ``Calculator.calculate_numerical_forces/stress`` call) agree with the analytic results; tolerances as in
    :func:`assert_derivatives`."""
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    atoms = ase_atoms(name)
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    num_forces = calculate_numerical_forces(atoms, eps=H_POS)
    num_stress = calculate_numerical_stress(atoms, eps=H_STRAIN)
    np.testing.assert_allclose(num_forces, forces, rtol=0, atol=1e-6 * np.abs(forces).max() + 1e-7)
    # ASE's stress is dE/deps / V: scale the tolerance like -V * stress
    np.testing.assert_allclose(num_stress, stress, rtol=0, atol=1e-6 * np.abs(stress).max() + 1e-8)


def test_ase_unknown_element_is_rejected():
    import ase

    from aiida_chimes.chimes.calculator import ChimesCalculator

    atoms = ase.Atoms("COFe", positions=[[0, 0, 0], [1.2, 0, 0], [0, 1.9, 0]], cell=np.eye(3) * 6, pbc=True)
    atoms.calc = ChimesCalculator(str(force_field_path(LIQCO)))
    with pytest.raises(ValueError, match="Fe"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="Fe"):
        model(LIQCO).evaluate(atoms.get_chemical_symbols(), atoms.positions, atoms.cell.array)


def test_ase_open_cluster_has_no_stress():
    import ase

    from aiida_chimes.chimes.calculator import ChimesCalculator

    symbols, pos, _ = random_config(LIQCO, seed=4, natoms=6, height=open_box(LIQCO), periodic=False)
    atoms = ase.Atoms(symbols, positions=pos, pbc=False)
    atoms.calc = ChimesCalculator(str(force_field_path(LIQCO)))
    ref = model(LIQCO).evaluate(symbols, pos, None, pbc=False)
    assert atoms.get_potential_energy() == pytest.approx(ref.energy * EV_PER_KCALMOL, rel=1e-12)
    with pytest.raises(ValueError, match="periodic"):
        atoms.get_stress()
    atoms.pbc = (True, False, True)
    atoms.cell = np.eye(3) * 10
    with pytest.raises(ValueError, match="mixed pbc"):
        atoms.get_potential_energy()


# ====================================================================== 6. open boundaries
@pytest.mark.parametrize("name", [LIQC, LIQCO, CARBON_4B, HN3])
def test_open_cluster(name):
    """pbc=False, no cell: finite energy, forces that are its derivative, no stress; invariant under a rigid
    motion."""
    m = model(name)
    symbols, pos, _ = random_config(name, seed=2, natoms=6, height=open_box(name), periodic=False)
    res = assert_derivatives(m, symbols, pos, None, pbc=False)
    assert_consistent(res)
    assert res.stress is None and res.volume is None
    rot = random_rotation(np.random.default_rng(8))
    moved = m.evaluate(symbols, pos @ rot.T + np.array([40.0, -7.0, 3.0]), None, pbc=False)
    assert_same(moved, res, forces=res.forces @ rot.T)
