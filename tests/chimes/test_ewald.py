"""Ewald Coulomb sums: chimes_lsq's parameters, Madelung constant, energy/force consistency, the per-pair-type
force columns against a direct double loop, and independence of the split in the converged limit."""

import itertools
import math

import numpy as np
import pytest
from scipy.special import erfc

from aiida_chimes.chimes.ewald import (
    EwaldParameters,
    coulomb_energy,
    coulomb_energy_forces,
    coulomb_force_columns,
    coulomb_forces,
    ewald_parameters,
    explicit_ewald_parameters,
)

# O/H style typing as chimes_lsq numbers pairs: OO = 0, HH = 1, OH = 2
PAIR_OF = np.array([[0, 2], [2, 1]])
NPAIRS = 3


def _random_cell(n, lengths, seed, rmin=1.0):
    """n atoms in an orthorhombic box, no two (minimum image) closer than rmin; types alternate 0, 1."""
    rng = np.random.default_rng(seed)
    L = np.asarray(lengths, dtype=float)
    pos = []
    while len(pos) < n:
        x = rng.random(3) * L
        if all(np.linalg.norm((x - y) - L * np.round((x - y) / L)) >= rmin for y in pos):
            pos.append(x)
    return np.array(pos), np.arange(n) % 2


def _images_and_kvectors(L, params):
    """For the direct oracles: integer image offsets covering the real-space cutoff, and the full set of
    k-vectors 2 pi n / L with 0 < |n|^2 < nsq_max (no half-space trick), with their squared norms."""
    s = [math.ceil(params.rcut / La) + 1 for La in L]
    m_int = np.array(list(itertools.product(*[range(-m, m + 1) for m in s])))
    r = np.arange(-params.kmax, params.kmax + 1)
    nv = np.array(list(itertools.product(r, r, r)))
    nsq = (nv**2).sum(axis=1)
    nv = nv[(nsq > 0) & (nsq < params.nsq_max)]
    k = 2 * np.pi * nv / L
    return m_int, k, (k**2).sum(axis=1)


def _columns_direct(pos, lengths, types, pair_of, npairs, params):
    """Slow transcription of the definition: loops over i, j != i, explicit images and the full k set."""
    L = np.asarray(lengths, dtype=float)
    n = len(pos)
    alpha, rc = params.alpha, params.rcut
    m_int, k, ksq = _images_and_kvectors(L, params)
    shifts = m_int * L
    g = 4 * np.pi / np.prod(L) * np.exp(-ksq / (4 * alpha**2)) / ksq
    out = np.zeros((n, 3, npairs))
    for i in range(n):
        for j in range(n):
            if j == i:
                continue
            p = pair_of[types[i], types[j]]
            d = pos[i] - pos[j] + shifts
            dist = np.linalg.norm(d, axis=1)
            m = dist < rc
            dm, rm = d[m], dist[m]
            f = (erfc(alpha * rm) + 2 * alpha * rm / np.sqrt(np.pi) * np.exp(-((alpha * rm) ** 2))) / rm**3
            out[i, :, p] += (dm * f[:, None]).sum(axis=0)
            out[i, :, p] += (k * (g * np.sin(k @ (pos[i] - pos[j])))[:, None]).sum(axis=0)
    return out


def _converged(lengths, alpha, tol_exp=32.0):
    """Explicit parameters whose real and reciprocal tails are both below ~exp(-tol_exp), without |n|^2 bound."""
    rc = math.sqrt(tol_exp) / alpha
    kcut = 2 * alpha * math.sqrt(tol_exp)
    kmax = math.ceil(kcut * max(lengths) / (2 * math.pi))
    return explicit_ewald_parameters(lengths, alpha, rc, kmax, nsq_max=3 * kmax**2 + 1)


def test_parameters_match_chimes_lsq_h2o():
    # shared/reference/chimes_lsq/h2o-2bcheby/correct_output/fm_setup.out (official chimes_lsq run):
    # 96 atoms in a cubic box of 8.6091309 A
    #   R-Space Ewald cutoff      =  4.304565e+00
    #   R-Space accuracy estimate =  5.997380e-07
    #   K-space accuracy estimate =  6.801448e-07
    #   Number of Ewald K-vectors = 238
    par = ewald_parameters(96, [8.6091309] * 3)
    assert par.rcut == pytest.approx(4.304565, rel=1e-6)
    assert par.r_accuracy == pytest.approx(5.997380e-07, rel=1e-5)
    assert par.k_accuracy == pytest.approx(6.801448e-07, rel=1e-5)
    assert par.nk_half == 238
    assert par.kmax == 7
    assert par.nsq_max == 50
    assert par.rcut == pytest.approx(0.5 * 8.6091309, rel=1e-15)  # capped case


def test_parameters_uncapped_and_errors():
    # a long box: rc from Fincham's formula is below half the shortest length, alpha untouched
    N, L = 3000, [40.0, 41.0, 42.0]
    par = ewald_parameters(N, L)
    V = float(np.prod(L))
    alpha = math.sqrt(math.pi) * (5.5 * N / V**2) ** (1 / 6)
    assert par.alpha == pytest.approx(alpha, rel=1e-14)
    assert par.rcut == pytest.approx(1.1 * math.sqrt(-0.8 * math.log(1e-6)) / alpha, rel=1e-14)
    assert par.rcut < 20.0
    with pytest.raises(ValueError, match="positive"):
        ewald_parameters(10, [5.0, 0.0, 5.0])
    with pytest.raises(ValueError, match="positive"):
        coulomb_forces(np.zeros((1, 3)), [5.0, 5.0, -5.0], [0.0])
    with pytest.raises(ValueError, match="3 numbers"):
        ewald_parameters(10, [5.0, 5.0])
    with pytest.raises(ValueError, match="alpha"):
        EwaldParameters(alpha=0.0, rcut=1.0, kmax=1, r_accuracy=0.0, k_accuracy=0.0, nk_half=0)


def _rocksalt(a):
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    pos = np.vstack([fcc, fcc + [0.5, 0, 0]]) * a
    q = np.array([1.0] * 4 + [-1.0] * 4)
    return pos, q


MADELUNG_NACL = 1.74756459463318


def test_madelung_rocksalt():
    a = 5.64
    pos, q = _rocksalt(a)
    L = [a, a, a]
    # converged split (rc > box length: several image shells), energy per ion pair = -M / (a/2)
    e = coulomb_energy(pos, L, q, _converged(L, alpha=0.9)) / 4
    assert e == pytest.approx(-MADELUNG_NACL / (a / 2), rel=1e-10)
    # chimes_lsq's default truncation is good to ~1e-6 here
    e_default = coulomb_energy(pos, L, q) / 4
    assert e_default == pytest.approx(-MADELUNG_NACL / (a / 2), rel=1e-5)
    # a tighter accuracy does NOT help with chimes_lsq's recipe: it raises alpha while the fixed |n|^2 < 50
    # bound clips the k sum, so the error grows (1.1e-3 here); converged sums need explicit parameters
    e_tight = coulomb_energy(pos, L, q, ewald_parameters(len(pos), L, accuracy=1e-10)) / 4
    assert abs(e_tight / (-MADELUNG_NACL / (a / 2)) - 1) > 1e-4
    # ions of a perfect crystal feel no force
    f = coulomb_forces(pos, L, q)
    assert np.abs(f).max() < 1e-10


def test_forces_are_minus_energy_gradient():
    L = np.array([6.0, 6.5, 7.0])
    pos, types = _random_cell(12, L, seed=3)
    q = np.where(types == 0, -0.8, 0.8)
    par = ewald_parameters(len(pos), L)  # fixed while differentiating
    e0, f = coulomb_energy_forces(pos, L, q, par)
    h = 1e-5
    fd = np.zeros_like(f)
    for i in range(len(pos)):
        for a in range(3):
            pp, pm = pos.copy(), pos.copy()
            pp[i, a] += h
            pm[i, a] -= h
            fd[i, a] = -(coulomb_energy(pp, L, q, par) - coulomb_energy(pm, L, q, par)) / (2 * h)
    scale = np.abs(f).max()
    assert np.abs(fd - f).max() < 1e-6 * scale
    assert np.allclose(f, coulomb_forces(pos, L, q, par), rtol=0, atol=1e-14 * scale)


@pytest.mark.parametrize("rc_over_l", [None, 1.3])
def test_columns_match_direct_loop(rc_over_l):
    L = np.array([5.0, 5.5, 6.0])
    pos, types = _random_cell(6, L, seed=11)
    if rc_over_l is None:
        par = ewald_parameters(len(pos), L)
    else:  # cut-off beyond the box: several image shells, and k-vectors beyond chimes_lsq's |n|^2 < 50
        par = explicit_ewald_parameters(L, alpha=0.7, rcut=rc_over_l * L.max(), kmax=5, nsq_max=60)
    cols = coulomb_force_columns(pos, L, types, PAIR_OF, NPAIRS, par)
    ref = _columns_direct(pos, L, types, PAIR_OF, NPAIRS, par)
    scale = np.abs(ref).max()
    assert np.abs(cols - ref).max() < 1e-11 * scale


def test_columns_consistency():
    L = np.array([6.0, 6.5, 7.0])
    pos, types = _random_cell(12, L, seed=5)
    par = ewald_parameters(len(pos), L)
    cols = coulomb_force_columns(pos, L, types, PAIR_OF, NPAIRS, par)
    scale = np.abs(cols).max()

    # (b) charges qO = -0.9, qH = 0.45: charge products per pair type OO, HH, OH
    qt = np.array([-0.9, 0.45])
    q = qt[types]
    qq = np.array([qt[0] * qt[0], qt[1] * qt[1], qt[0] * qt[1]])
    f = coulomb_forces(pos, L, q, par)
    assert np.abs(cols @ qq - f).max() < 1e-12 * np.abs(f).max()

    # (c) momentum conservation per column
    assert np.abs(cols.sum(axis=0)).max() < 1e-10 * scale

    # (d) translation invariance: by a lattice vector (positions are wrapped) and by an arbitrary shift
    for shift in (L * [1, -2, 3], np.array([0.37, -1.2, 2.9])):
        moved = coulomb_force_columns(pos + shift, L, types, PAIR_OF, NPAIRS, par)
        assert np.abs(moved - cols).max() < 1e-11 * scale

    # default parameters are ewald_parameters(natoms, lengths)
    assert np.array_equal(coulomb_force_columns(pos, L, types, PAIR_OF, NPAIRS), cols)


def test_converged_sum_is_independent_of_split():
    L = np.array([5.0, 5.5, 6.0])
    pos, types = _random_cell(8, L, seed=7)
    p1 = _converged(L, alpha=0.8)
    p2 = _converged(L, alpha=1.3)
    assert p1.rcut > L.max() and p2.kmax > p1.kmax
    c1 = coulomb_force_columns(pos, L, types, PAIR_OF, NPAIRS, p1)
    c2 = coulomb_force_columns(pos, L, types, PAIR_OF, NPAIRS, p2)
    assert np.abs(c1 - c2).max() < 1e-8 * np.abs(c1).max()
    q = np.where(types == 0, -0.7, 0.7)
    e1 = coulomb_energy(pos, L, q, p1)
    e2 = coulomb_energy(pos, L, q, p2)
    assert e1 == pytest.approx(e2, rel=1e-8)
