"""coulomb_pair_terms: per-pair-type Ewald energy, forces, virial and per-atom energies, checked against a direct
double loop over images and k-vectors, per-atom-charge sums, finite differences in positions and box lengths,
and the converged rock-salt limit (Madelung constant, virial theorem, cubic symmetry)."""

import numpy as np
import pytest
from scipy.special import erfc

from aiida_chimes.chimes.ewald import (
    coulomb_energy_forces,
    coulomb_force_columns,
    coulomb_pair_terms,
    ewald_parameters,
    explicit_ewald_parameters,
)
from tests.chimes.test_ewald import (  # AA = 0, BB = 1, AB = 2
    MADELUNG_NACL,
    NPAIRS,
    PAIR_OF,
    _converged,
    _images_and_kvectors,
)

BOX = np.array([6.0, 7.0, 8.0])
# fixed split for the finite-difference tests: alpha rcut = 5.6, so erfc(alpha rcut) ~ 1e-15 and the sharp
# real-space cut adds no visible jump when a pair crosses rcut
FD_ALPHA, FD_RCUT, FD_KMAX = 0.9, 6.2, 6


def _random_cell(counts, lengths, seed, rmin=1.2):
    """counts[t] atoms of type t in an orthorhombic box, no two (minimum image) closer than rmin."""
    rng = np.random.default_rng(seed)
    L = np.asarray(lengths, dtype=float)
    types = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    pos = []
    while len(pos) < len(types):
        x = rng.random(3) * L
        if all(np.linalg.norm((x - y) - L * np.round((x - y) / L)) >= rmin for y in pos):
            pos.append(x)
    return np.array(pos), types


def _rocksalt(a):
    """NaCl conventional cell: Na (type 0) on fcc sites, Cl (type 1) shifted by a/2 along x."""
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    return np.vstack([fcc, fcc + [0.5, 0, 0]]) * a, np.array([0] * 4 + [1] * 4)


def _contract(terms, qq):
    """Physical (E, F, W, per-atom E) for pair-type charge products qq."""
    qq = np.asarray(qq, dtype=float)
    return terms.energy @ qq, terms.forces @ qq, np.tensordot(qq, terms.virial, 1), terms.atom_energy @ qq


def _direct(pos, lengths, types, pair_of, npairs, params):
    """Slow transcription of the truncated sum per pair type: loops over all ordered pairs (i, j) (j = i
    included, its zero image excluded) and explicit images, and over the full k set (no half-space trick).
    Returns energy (npairs,), forces (n, 3, npairs), virial W = sum d (x) F (npairs, 3, 3), where the
    reciprocal virial is (2pi/V) g(k) cos(k.d) (delta_ab - 2 k_a k_b (1/k^2 + 1/(4 alpha^2))), and per-atom
    energies (n, npairs) in the convention E_i = q_i phi_i / 2 (each pair books half of its energy on either
    atom, real and reciprocal alike; the self term goes to its atom)."""
    L = np.asarray(lengths, dtype=float)
    n = len(pos)
    alpha, rc = params.alpha, params.rcut
    m_int, k, ksq = _images_and_kvectors(L, params)
    shifts = m_int * L
    g = 2 * np.pi / np.prod(L) * np.exp(-ksq / (4 * alpha**2)) / ksq
    kk = np.eye(3)[None] - 2 * k[:, :, None] * k[:, None, :] * (1 / ksq + 1 / (4 * alpha**2))[:, None, None]
    forces = np.zeros((n, 3, npairs))
    virial = np.zeros((npairs, 3, 3))
    atom = np.zeros((n, npairs))
    for i in range(n):
        p = pair_of[types[i], types[i]]
        atom[i, p] -= alpha / np.sqrt(np.pi)
        for j in range(n):
            p = pair_of[types[i], types[j]]
            d = pos[i] - pos[j] + shifts
            dist = np.linalg.norm(d, axis=1)
            keep = (dist < rc) & ((i != j) | np.any(m_int != 0, axis=1))
            dm, rm = d[keep], dist[keep]
            f = (erfc(alpha * rm) + 2 * alpha * rm / np.sqrt(np.pi) * np.exp(-((alpha * rm) ** 2))) / rm**3
            atom[i, p] += 0.5 * (erfc(alpha * rm) / rm).sum()
            forces[i, :, p] += (dm * f[:, None]).sum(axis=0)
            virial[p] += 0.5 * np.einsum("m,ma,mb->ab", f, dm, dm)
            kd = k @ (pos[i] - pos[j])
            atom[i, p] += (g * np.cos(kd)).sum()
            forces[i, :, p] += (k * (2 * g * np.sin(kd))[:, None]).sum(axis=0)
            virial[p] += np.einsum("m,mab->ab", g * np.cos(kd), kk)
    return atom.sum(axis=0), forces, virial, atom


@pytest.mark.parametrize("which", ["default", "explicit"])
def test_matches_direct_loop(which):
    """Every pair-type component of energy, forces, virial and per-atom energy equals the direct double loop
    (independent of the kernels' structure factors and pair bookkeeping), for chimes_lsq's default split and for
    a cut-off beyond the box with k-vectors beyond |n|^2 < 50."""
    L = np.array([5.0, 5.5, 6.0])
    pos, types = _random_cell([3, 4], L, seed=11)
    if which == "default":
        par = ewald_parameters(len(pos), L)
    else:
        par = explicit_ewald_parameters(L, alpha=0.7, rcut=1.3 * L.max(), kmax=5, nsq_max=60)
    t = coulomb_pair_terms(pos, L, types, PAIR_OF, NPAIRS, par)
    e, f, w, ea = _direct(pos, L, types, PAIR_OF, NPAIRS, par)
    assert t.energy.shape == (NPAIRS,) and t.forces.shape == (len(pos), 3, NPAIRS)
    assert t.virial.shape == (NPAIRS, 3, 3) and t.atom_energy.shape == (len(pos), NPAIRS)
    assert t.params == par
    assert np.abs(t.energy - e).max() < 1e-12 * np.abs(e).max()
    assert np.abs(t.forces - f).max() < 1e-11 * np.abs(f).max()
    assert np.abs(t.virial - w).max() < 1e-11 * np.abs(w).max()
    assert np.abs(t.atom_energy - ea).max() < 1e-12 * np.abs(ea).max()


@pytest.mark.parametrize("which", ["default", "converged"])
def test_per_atom_charges(which):
    """With charges +2 / -1 (neutral, 8 + 16 atoms) and qq[pair_of[a, b]] = q_a q_b, energy @ qq and forces @ qq
    equal coulomb_energy_forces; forces equal coulomb_force_columns; params=None means ewald_parameters."""
    pos, types = _random_cell([8, 16], BOX, seed=5)
    qt = np.array([2.0, -1.0])
    qq = np.array([qt[0] ** 2, qt[1] ** 2, qt[0] * qt[1]])
    par = None if which == "default" else _converged(BOX, alpha=0.9)
    t = coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, par)
    e_ref, f_ref = coulomb_energy_forces(pos, BOX, qt[types], par)
    e, f, _, _ = _contract(t, qq)
    assert e == pytest.approx(e_ref, rel=1e-12)
    assert np.abs(f - f_ref).max() < 1e-12 * np.abs(f_ref).max()
    cols = coulomb_force_columns(pos, BOX, types, PAIR_OF, NPAIRS, par)
    assert np.abs(t.forces - cols).max() <= 1e-14 * np.abs(cols).max()
    if par is None:
        assert t.params == ewald_parameters(len(pos), BOX)


def test_forces_are_minus_energy_gradient():
    """forces @ qq is minus the central-difference gradient of energy @ qq (3 independent products, not from
    per-atom charges; fixed split, so E is smooth in the positions)."""
    pos, types = _random_cell([4, 8], BOX, seed=3)
    qq = np.array([1.3, -0.7, 0.4])
    par = explicit_ewald_parameters(BOX, FD_ALPHA, FD_RCUT, FD_KMAX)
    _, f, _, _ = _contract(coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, par), qq)
    h = 1e-5
    fd = np.zeros_like(f)
    for i in range(len(pos)):
        for a in range(3):
            pp, pm = pos.copy(), pos.copy()
            pp[i, a] += h
            pm[i, a] -= h
            ep = coulomb_pair_terms(pp, BOX, types, PAIR_OF, NPAIRS, par).energy @ qq
            em = coulomb_pair_terms(pm, BOX, types, PAIR_OF, NPAIRS, par).energy @ qq
            fd[i, a] = -(ep - em) / (2 * h)
    assert np.abs(fd - f).max() < 1e-7 * np.abs(f).max()


def _strained_energy(pos, types, a, s, par, qq):
    """energy @ qq with box length L_a and all a-coordinates scaled by s (alpha, rcut, integer k set fixed)."""
    L, p = BOX.copy(), pos.copy()
    L[a] *= s
    p[:, a] *= s
    return coulomb_pair_terms(p, L, types, PAIR_OF, NPAIRS, par).energy @ qq


def test_virial_is_strain_derivative():
    """W_aa = -L_a dE/dL_a (central difference in a uniaxial scaling of box and coordinates, fixed split), per
    pair type and for qq = [1.3, -0.7, 0.4]; W is symmetric."""
    pos, types = _random_cell([8, 16], BOX, seed=5)
    par = explicit_ewald_parameters(BOX, FD_ALPHA, FD_RCUT, FD_KMAX)
    t = coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, par)
    assert np.abs(t.virial - t.virial.transpose(0, 2, 1)).max() <= 1e-14 * np.abs(t.virial).max()
    h = 1e-5
    for qq in (np.eye(NPAIRS), np.array([1.3, -0.7, 0.4])):
        w = np.tensordot(qq, t.virial, 1)  # (..., 3, 3)
        for a in range(3):
            de = _strained_energy(pos, types, a, 1 + h, par, qq) - _strained_energy(pos, types, a, 1 - h, par, qq)
            fd = -de / (2 * h)
            assert np.abs(w[..., a, a] - fd).max() < 1e-6 * np.abs(w).max()


def test_rocksalt_converged():
    """Rock salt, converged split: E per ion pair is -M / (a/2), trace(W) = E (virial theorem for 1/r), W is
    isotropic with vanishing off-diagonals, no forces, and every ion carries E / 8."""
    a = 5.64
    pos, types = _rocksalt(a)
    L = np.array([a, a, a])
    t = coulomb_pair_terms(pos, L, types, PAIR_OF, NPAIRS, _converged(L, alpha=0.9))
    e, f, w, ea = _contract(t, [1.0, 1.0, -1.0])
    assert e / 4 == pytest.approx(-MADELUNG_NACL / (a / 2), rel=1e-10)
    assert np.trace(w) == pytest.approx(e, rel=1e-9)
    assert np.abs(np.diag(w) - e / 3).max() < 1e-10 * abs(e)
    assert np.abs(w - np.diag(np.diag(w))).max() < 1e-10 * abs(e)
    assert np.abs(f).max() < 1e-10
    assert np.abs(ea - e / 8).max() < 1e-10 * abs(e)


def test_virial_theorem_random_neutral():
    """For any neutral charge assignment the converged trace(W) equals E (1/r is homogeneous of degree -1), and
    the converged terms do not depend on the split alpha."""
    pos, types = _random_cell([8, 16], BOX, seed=5)
    qq = np.array([4.0, 1.0, -2.0])  # charges +2 / -1: neutral
    t1 = coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, _converged(BOX, alpha=0.9))
    t2 = coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, _converged(BOX, alpha=1.3))
    e, _, w, _ = _contract(t1, qq)
    assert np.trace(w) == pytest.approx(e, rel=1e-9)
    e2, _, w2, _ = _contract(t2, qq)
    assert e2 == pytest.approx(e, rel=1e-9)
    assert np.abs(w2 - w).max() < 1e-9 * np.abs(w).max()


@pytest.mark.parametrize("which", ["default", "converged"])
def test_atom_energy_sums_to_energy(which):
    """atom_energy sums over atoms to energy, per pair type; a lattice translation leaves it unchanged."""
    pos, types = _random_cell([8, 16], BOX, seed=9)
    par = None if which == "default" else _converged(BOX, alpha=0.9)
    t = coulomb_pair_terms(pos, BOX, types, PAIR_OF, NPAIRS, par)
    assert np.abs(t.atom_energy.sum(axis=0) - t.energy).max() < 1e-12 * np.abs(t.energy).max()
    moved = coulomb_pair_terms(pos + BOX * [1, -2, 3], BOX, types, PAIR_OF, NPAIRS, par)
    assert np.abs(moved.atom_energy - t.atom_energy).max() < 1e-11 * np.abs(t.atom_energy).max()


def test_input_errors():
    """Wrong positions shape, non-symmetric pair_of, types out of range or of wrong length raise ValueError."""
    pos, types = _random_cell([2, 2], BOX, seed=1)
    with pytest.raises(ValueError, match="positions"):
        coulomb_pair_terms(pos[:, :2], BOX, types, PAIR_OF, NPAIRS)
    with pytest.raises(ValueError, match="symmetric"):
        coulomb_pair_terms(pos, BOX, types, np.array([[0, 1], [2, 1]]), NPAIRS)
    with pytest.raises(ValueError, match="types"):
        coulomb_pair_terms(pos, BOX, np.array([0, 1, 2, 0]), PAIR_OF, NPAIRS)
    with pytest.raises(ValueError, match="types"):
        coulomb_pair_terms(pos, BOX, types[:3], PAIR_OF, NPAIRS)
    with pytest.raises(ValueError):
        coulomb_pair_terms(pos, BOX, types, PAIR_OF, 2)  # pair index 2 out of range
    with pytest.raises(ValueError, match="3 numbers"):
        coulomb_pair_terms(pos, BOX[:2], types, PAIR_OF, NPAIRS)
