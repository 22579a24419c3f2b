"""Ewald Coulomb sums for orthorhombic cells, truncated exactly as chimes_lsq truncates them.

With ``FITCOUL true`` chimes_lsq fits one charge product q_A q_B per atom-pair type.  Its design matrix then
carries, after the short-range columns, one column per pair type p whose force rows hold the Ewald Coulomb
force on each atom per unit charge product (ke = 1, Angstrom): the force on atom i from every pair (i, j) of
pair type p, computed with q_i q_j = 1.  To reproduce that matrix to round-off we use the same truncated sum
(source: rk-lindsey/chimes_lsq ``src/Ewald.C``, functions ``optimal_ewald_params`` and ``ZCalc_Ewald_Deriv``):

* Parameters (Fincham's recipe, :func:`ewald_parameters`): p = -0.8 ln(accuracy),
  alpha = sqrt(pi) (5.5 N / V^2)^(1/6), rc = 1.1 sqrt(p) / alpha, capped at half the shortest box length (then
  alpha = sqrt(p) / rc); kmax = ceil(rkc V^(1/3) / 2pi) with rkc = 2 alpha sqrt(p) / 1.1.
* Real space: every pair (i, image of j) closer than rc (strictly) adds
  d (erfc(alpha r) + 2 alpha r / sqrt(pi) exp(-alpha^2 r^2)) / r^3 to the force on i (d = r_i - r_j).
* Reciprocal space: k = 2pi (nx/Lx, ny/Ly, nz/Lz) for integer |n_a| <= kmax with 0 < |n|^2 < 50 (the 50 is a
  fixed constant of chimes_lsq, not derived from kmax) adds (4pi/V) k exp(-k^2/4alpha^2)/k^2 sin(k.(r_i - r_j)).
* No self-energy or neutralising-background term enters the forces.

Only half of the k set is stored (k and -k contribute equally; factor 2).  The reciprocal part uses per-type
structure factors, so a column costs O(N K) rather than O(N^2 K).  The real-space part loops over atom pairs
and, per pair, over exactly the periodic images whose per-axis offset can lie within rc, so cut-offs longer
than half the box (explicit :class:`EwaldParameters`) are handled correctly.

:func:`coulomb_pair_terms` gives, per pair type and unit charge product, the energy (real + reciprocal - self
alpha/sqrt(pi) q_i^2), the force columns, the virial W = sum r (x) F (strain derivative at fixed parameters)
and the per-atom split of the energy; a FITCOUL model's Coulomb part is these times its fitted products.
:func:`coulomb_energy` and :func:`coulomb_forces` evaluate the same sum for per-atom charges (one kernel: the
pair-type sums weight every atom by a charge, 1 for the columns).  The uniform-background term
-pi Q^2 / (2 V alpha^2) of charged cells is not included.
"""

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

#: chimes_lsq keeps k-vectors with 0 < nx^2 + ny^2 + nz^2 < this constant, whatever kmax is.
CHIMES_NSQ_MAX = 50

_SQRT_PI = math.sqrt(math.pi)


@dataclass(frozen=True)
class EwaldParameters:
    """Splitting and truncation of an Ewald sum.

    ``alpha`` (1/Angstrom) is the splitting parameter, ``rcut`` (Angstrom) the real-space cut-off, ``kmax`` the
    largest |n_a| of a k-vector, ``nsq_max`` the (exclusive) bound on nx^2 + ny^2 + nz^2.  ``r_accuracy`` and
    ``k_accuracy`` are chimes_lsq's accuracy estimates and ``nk_half`` the k-vector count chimes_lsq prints (the
    triples with all components >= 0); these three are informational only.
    """

    alpha: float
    rcut: float
    kmax: int
    r_accuracy: float
    k_accuracy: float
    nk_half: int
    nsq_max: int = CHIMES_NSQ_MAX

    def __post_init__(self):
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"Ewald alpha must be positive and finite, got {self.alpha}")
        if not (self.rcut > 0 and math.isfinite(self.rcut)):
            raise ValueError(f"Ewald real-space cut-off must be positive and finite, got {self.rcut}")
        if self.kmax < 0 or self.nsq_max < 1:
            raise ValueError(f"Ewald kmax must be >= 0 and nsq_max >= 1, got {self.kmax}, {self.nsq_max}")


def _check_lengths(lengths) -> np.ndarray:
    L = np.ascontiguousarray(np.asarray(lengths, dtype=np.float64).reshape(-1))
    if L.shape != (3,):
        raise ValueError(f"box lengths must be 3 numbers (orthorhombic cell), got {np.asarray(lengths)!r}")
    if not np.all(np.isfinite(L)) or np.any(L <= 0):
        raise ValueError(f"box lengths must be positive and finite, got {L.tolist()}")
    return L


def orthorhombic_lengths(cell) -> np.ndarray:
    """Box lengths of an orthorhombic cell (rows = lattice vectors); chimes_lsq's Ewald sum knows no other cells."""
    cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
    off = cell - np.diag(np.diag(cell))
    lengths = np.diag(cell).copy()
    if np.any(np.abs(off) > 1e-10 * np.abs(lengths).max()) or np.any(lengths <= 0):
        raise ValueError("FITCOUL true needs orthorhombic cells (chimes_lsq's Ewald sum takes box lengths only); "
                         f"this cell is {cell.tolist()}")
    return lengths


def _count_octant(kmax: int, nsq_max: int) -> int:
    n = np.arange(kmax + 1)
    nsq = n[:, None, None] ** 2 + n[None, :, None] ** 2 + n[None, None, :] ** 2
    return int(np.count_nonzero((nsq > 0) & (nsq < nsq_max)))


def explicit_ewald_parameters(lengths, alpha: float, rcut: float, kmax: int, nsq_max: int = CHIMES_NSQ_MAX):
    """:class:`EwaldParameters` for a chosen split, with chimes_lsq's accuracy estimates filled in.

    Pass ``nsq_max = 3 * kmax**2 + 1`` to lift chimes_lsq's fixed bound on |n|^2 (needed for tight sums).
    """
    L = _check_lengths(lengths)
    kmax = int(kmax)
    rkc = kmax * 2.0 * math.pi / float(np.prod(L)) ** (1.0 / 3.0)
    k_acc = math.exp(-(rkc**2) / (4.0 * alpha * alpha)) / rkc**2 if kmax > 0 else math.inf
    return EwaldParameters(
        alpha=float(alpha),
        rcut=float(rcut),
        kmax=kmax,
        r_accuracy=math.erfc(alpha * rcut) / rcut,
        k_accuracy=k_acc,
        nk_half=_count_octant(kmax, int(nsq_max)),
        nsq_max=int(nsq_max),
    )


def ewald_parameters(natoms: int, lengths, accuracy: float = 1e-6) -> EwaldParameters:
    """chimes_lsq's Ewald parameters (``optimal_ewald_params``) for ``natoms`` atoms in a box of ``lengths``.

    chimes_lsq always uses the default accuracy.  A tighter one does not converge the sum: it raises alpha while
    the fixed |n|^2 < 50 bound clips the k sum (rock salt: 7e-7 relative error at 1e-6, 1e-3 at 1e-10).  For a
    converged sum use :func:`explicit_ewald_parameters` with a lifted ``nsq_max``.
    """
    L = _check_lengths(lengths)
    if natoms < 1:
        raise ValueError(f"Ewald sum needs at least one atom, got {natoms}")
    if not (0 < accuracy < 1):
        raise ValueError(f"Ewald accuracy must lie in (0, 1), got {accuracy}")
    volume = float(np.prod(L))
    p = -math.log(accuracy) * 0.8
    alpha = _SQRT_PI * (5.5 * natoms / volume**2) ** (1.0 / 6.0)
    rc = 1.1 * math.sqrt(p) / alpha
    half_min = 0.5 * float(L.min())
    if rc > half_min:
        rc = half_min
        alpha = math.sqrt(p) / rc
    rkc = 2.0 * alpha * math.sqrt(p) / 1.1
    kmax = math.ceil(rkc * volume ** (1.0 / 3.0) / (2.0 * math.pi))
    return explicit_ewald_parameters(L, alpha, rc, kmax)


# ----------------------------------------------------------------------------------------------------------------
# numba kernels


@njit(cache=True)
def _half_kvectors(kmax, nsq_max):
    """Integer k-vectors of one half space (first nonzero component positive) with 0 < |n|^2 < nsq_max."""
    out = np.empty(((kmax + 1) * (2 * kmax + 1) ** 2, 3), dtype=np.int64)
    m = 0
    for nx in range(0, kmax + 1):
        for ny in range(-kmax, kmax + 1):
            for nz in range(-kmax, kmax + 1):
                nsq = nx * nx + ny * ny + nz * nz
                if nsq == 0 or nsq >= nsq_max:
                    continue
                if nx == 0 and (ny < 0 or (ny == 0 and nz < 0)):
                    continue
                out[m, 0] = nx
                out[m, 1] = ny
                out[m, 2] = nz
                m += 1
    return out[:m].copy()


@njit(cache=True)
def _kspace_setup(nvec, lengths, alpha):
    """Cartesian k (K, 3) and 2 * (4 pi / V) exp(-k^2 / 4 alpha^2) / k^2 (the factor 2 accounts for -k)."""
    nk = nvec.shape[0]
    kvec = np.empty((nk, 3))
    coef = np.empty(nk)
    volume = lengths[0] * lengths[1] * lengths[2]
    for m in range(nk):
        ksq = 0.0
        for a in range(3):
            kvec[m, a] = 2.0 * math.pi * nvec[m, a] / lengths[a]
            ksq += kvec[m, a] * kvec[m, a]
        coef[m] = 2.0 * (4.0 * math.pi / volume) * math.exp(-ksq / (4.0 * alpha * alpha)) / ksq
    return kvec, coef


@njit(cache=True)
def _phase_tables(pos, lengths, kmax):
    """cos and sin of 2 pi n x_a / L_a for n = 0..kmax: arrays (natoms, 3, kmax + 1)."""
    n = pos.shape[0]
    ct = np.empty((n, 3, kmax + 1))
    st = np.empty((n, 3, kmax + 1))
    for i in range(n):
        for a in range(3):
            base = 2.0 * math.pi * pos[i, a] / lengths[a]
            for m in range(kmax + 1):
                ct[i, a, m] = math.cos(m * base)
                st[i, a, m] = math.sin(m * base)
    return ct, st


@njit(cache=True, inline="always")
def _phase(ct, st, i, nx, ny, nz):
    """(cos, sin) of k.r_i for integer k-vector (nx >= 0, ny, nz of any sign)."""
    cx = ct[i, 0, nx]
    sx = st[i, 0, nx]
    my = abs(ny)
    cy = ct[i, 1, my]
    sy = st[i, 1, my] if ny >= 0 else -st[i, 1, my]
    mz = abs(nz)
    cz = ct[i, 2, mz]
    sz = st[i, 2, mz] if nz >= 0 else -st[i, 2, mz]
    cxy = cx * cy - sx * sy
    sxy = sx * cy + cx * sy
    return cxy * cz - sxy * sz, sxy * cz + cxy * sz


@njit(cache=True, inline="always")
def _image_range(d, length, rc):
    """Integer shifts m with |d + m L| < rc possible: m in [lo, hi]."""
    lo = math.ceil((-rc - d) / length)
    hi = math.floor((rc - d) / length)
    return lo, hi


@njit(cache=True, inline="always")
def _real_force_factor(r, alpha):
    """(erfc(alpha r) + 2 alpha r / sqrt(pi) exp(-alpha^2 r^2)) / r^3."""
    ar = alpha * r
    return (math.erfc(ar) + 2.0 * ar / math.sqrt(math.pi) * math.exp(-ar * ar)) / (r * r * r)


@njit(cache=True)
def _real_terms(pos, lengths, types, pair_of, q, rc, alpha, forces, energy, virial, eatom):
    """Add the real-space sum over pairs (i, image of j) closer than rc, each weighted q_i q_j and booked under
    pair type pair_of[types[i], types[j]]: forces (n, 3, npairs), energy (npairs,), virial W = sum d (x) F
    (npairs, 3, 3) and per-atom energies (n, npairs).  The images of an atom itself (j = i, m != 0) come in +-m
    pairs: no force, half weight in energy and virial."""
    n = pos.shape[0]
    rc2 = rc * rc
    Lx = lengths[0]
    Ly = lengths[1]
    Lz = lengths[2]
    for i in range(n):
        for j in range(i, n):
            p = pair_of[types[i], types[j]]
            qq = q[i] * q[j]
            w = 0.5 * qq if j == i else qq
            dx0 = pos[i, 0] - pos[j, 0]
            dy0 = pos[i, 1] - pos[j, 1]
            dz0 = pos[i, 2] - pos[j, 2]
            xlo, xhi = _image_range(dx0, Lx, rc)
            ylo, yhi = _image_range(dy0, Ly, rc)
            zlo, zhi = _image_range(dz0, Lz, rc)
            for mx in range(xlo, xhi + 1):
                dx = dx0 + mx * Lx
                for my in range(ylo, yhi + 1):
                    dy = dy0 + my * Ly
                    dxy2 = dx * dx + dy * dy
                    if dxy2 >= rc2:
                        continue
                    for mz in range(zlo, zhi + 1):
                        if j == i and mx == 0 and my == 0 and mz == 0:
                            continue
                        dz = dz0 + mz * Lz
                        r2 = dxy2 + dz * dz
                        if r2 >= rc2:
                            continue
                        r = math.sqrt(r2)
                        e = w * math.erfc(alpha * r) / r
                        energy[p] += e
                        eatom[i, p] += 0.5 * e
                        eatom[j, p] += 0.5 * e
                        g = _real_force_factor(r, alpha)
                        gw = g * w
                        virial[p, 0, 0] += gw * dx * dx
                        virial[p, 0, 1] += gw * dx * dy
                        virial[p, 0, 2] += gw * dx * dz
                        virial[p, 1, 1] += gw * dy * dy
                        virial[p, 1, 2] += gw * dy * dz
                        virial[p, 2, 2] += gw * dz * dz
                        if j != i:
                            gq = g * qq
                            forces[i, 0, p] += gq * dx
                            forces[i, 1, p] += gq * dy
                            forces[i, 2, p] += gq * dz
                            forces[j, 0, p] -= gq * dx
                            forces[j, 1, p] -= gq * dy
                            forces[j, 2, p] -= gq * dz


@njit(cache=True)
def _recip_terms(pos, lengths, types, pair_of, ntypes, q, nvec, kmax, alpha, forces, energy, virial, eatom):
    """Add the reciprocal-space sum (as :func:`_real_terms`), via per-type structure factors S_t = sum q_i
    exp(i k.r_i) over atoms of type t: pair type (a, b) gets (coef / 2) Re(S_a S_b^*) per k-vector (twice for
    a != b), virial E_k (delta - 2 (1/k^2 + 1/(4 alpha^2)) k (x) k)."""
    n = pos.shape[0]
    kvec, coef = _kspace_setup(nvec, lengths, alpha)
    ct, st = _phase_tables(pos, lengths, kmax)
    c = np.empty(n)
    s = np.empty(n)
    csum = np.empty(ntypes)
    ssum = np.empty(ntypes)
    inv4a2 = 1.0 / (4.0 * alpha * alpha)
    for m in range(nvec.shape[0]):
        nx = nvec[m, 0]
        ny = nvec[m, 1]
        nz = nvec[m, 2]
        csum[:] = 0.0
        ssum[:] = 0.0
        for i in range(n):
            ci, si = _phase(ct, st, i, nx, ny, nz)
            c[i] = ci
            s[i] = si
            csum[types[i]] += q[i] * ci
            ssum[types[i]] += q[i] * si
        k0 = kvec[m, 0]
        k1 = kvec[m, 1]
        k2 = kvec[m, 2]
        fac = 2.0 * (1.0 / (k0 * k0 + k1 * k1 + k2 * k2) + inv4a2)
        half = 0.5 * coef[m]
        for a in range(ntypes):
            for b in range(a, ntypes):
                p = pair_of[a, b]
                ek = half * (csum[a] * csum[b] + ssum[a] * ssum[b])
                if b != a:
                    ek *= 2.0
                energy[p] += ek
                virial[p, 0, 0] += ek * (1.0 - fac * k0 * k0)
                virial[p, 0, 1] -= ek * fac * k0 * k1
                virial[p, 0, 2] -= ek * fac * k0 * k2
                virial[p, 1, 1] += ek * (1.0 - fac * k1 * k1)
                virial[p, 1, 2] -= ek * fac * k1 * k2
                virial[p, 2, 2] += ek * (1.0 - fac * k2 * k2)
        kx = k0 * coef[m]
        ky = k1 * coef[m]
        kz = k2 * coef[m]
        for i in range(n):
            ti = types[i]
            qi = q[i]
            for b in range(ntypes):
                p = pair_of[ti, b]
                # sum over j of type b of q_j sin(k.(r_i - r_j)) and q_j cos(k.(r_i - r_j))
                val = qi * (s[i] * csum[b] - c[i] * ssum[b])
                forces[i, 0, p] += kx * val
                forces[i, 1, p] += ky * val
                forces[i, 2, p] += kz * val
                eatom[i, p] += half * qi * (c[i] * csum[b] + s[i] * ssum[b])


# ----------------------------------------------------------------------------------------------------------------
# public API


def _prepare(positions, lengths, params):
    L = _check_lengths(lengths)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 1:
        raise ValueError(f"positions must have shape (natoms, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions must be finite")
    pos = np.ascontiguousarray(pos - L * np.floor(pos / L))
    if params is None:
        params = ewald_parameters(pos.shape[0], L)
    nvec = _half_kvectors(params.kmax, params.nsq_max)
    return pos, L, params, nvec


@dataclass(frozen=True)
class CoulombTerms:
    """Ewald Coulomb terms per unit charge product (ke = 1) of each pair type p.

    For charge products qq (npairs,): energy ``energy @ qq``, forces ``forces @ qq`` (natoms, 3), virial
    ``np.tensordot(qq, virial, 1)`` (3, 3; W_ab = sum r_a F_b, so the Coulomb stress, pressure-positive, is
    W / V and trace(W) equals the energy of a converged sum) and per-atom energies ``atom_energy @ qq``.
    """

    energy: np.ndarray  # (npairs,): real + reciprocal - self
    forces: np.ndarray  # (natoms, 3, npairs)
    virial: np.ndarray  # (npairs, 3, 3), symmetric
    atom_energy: np.ndarray  # (natoms, npairs), sums to energy
    params: EwaldParameters


def _check_types(t, po, npairs, natoms):
    if t.shape[0] != natoms:
        raise ValueError(f"types has {t.shape[0]} entries for {natoms} atoms")
    if po.ndim != 2 or po.shape[0] != po.shape[1]:
        raise ValueError(f"pair_of must be a square (ntypes, ntypes) table, got shape {po.shape}")
    ntypes = po.shape[0]
    if t.min() < 0 or t.max() >= ntypes:
        raise ValueError(f"atom types must lie in [0, {ntypes}), got range [{t.min()}, {t.max()}]")
    if not np.array_equal(po, po.T):
        raise ValueError("pair_of must be symmetric")
    if po.min() < 0 or po.max() >= npairs:
        raise ValueError(f"pair_of entries must lie in [0, {npairs}), got range [{po.min()}, {po.max()}]")


def _terms(pos, L, params, nvec, types, pair_of, npairs, q) -> CoulombTerms:
    n = pos.shape[0]
    forces = np.zeros((n, 3, npairs))
    energy = np.zeros(npairs)
    virial = np.zeros((npairs, 3, 3))
    eatom = np.zeros((n, npairs))
    _real_terms(pos, L, types, pair_of, q, params.rcut, params.alpha, forces, energy, virial, eatom)
    _recip_terms(pos, L, types, pair_of, pair_of.shape[0], q, nvec, params.kmax, params.alpha,
                 forces, energy, virial, eatom)
    # self term -alpha/sqrt(pi) q_i^2, booked under the pair type of (type i, type i)
    own = pair_of[types, types]
    self_e = params.alpha / _SQRT_PI * q * q
    np.subtract.at(energy, own, self_e)
    eatom[np.arange(n), own] -= self_e
    for a in range(3):
        for b in range(a):
            virial[:, a, b] = virial[:, b, a]
    return CoulombTerms(energy, forces, virial, eatom, params)


def coulomb_pair_terms(positions, lengths, types, pair_of, npairs: int, params: EwaldParameters | None = None):
    """:class:`CoulombTerms` (energy, force columns, virial, per-atom energies) per unit charge product.

    ``types`` (natoms,) holds type indices into the symmetric (ntypes, ntypes) ``pair_of`` table of pair-type
    indices in [0, npairs).  Pair type p collects every pair (i, j) (periodic images included) whose types map
    to p, with q_i q_j = 1 and ke = 1.  ``params`` defaults to :func:`ewald_parameters`.
    """
    pos, L, params, nvec = _prepare(positions, lengths, params)
    t = np.ascontiguousarray(types, dtype=np.int64).reshape(-1)
    po = np.ascontiguousarray(pair_of, dtype=np.int64)
    npairs = int(npairs)
    _check_types(t, po, npairs, pos.shape[0])
    return _terms(pos, L, params, nvec, t, po, npairs, np.ones(pos.shape[0]))


def coulomb_force_columns(positions, lengths, types, pair_of, npairs: int, params: EwaldParameters | None = None):
    """Ewald force columns per unit charge product: array (natoms, 3, npairs) (see :func:`coulomb_pair_terms`).

    Column p of atom i is the force on i from all pairs (i, j) of pair type p (periodic images included) with
    q_i q_j = 1 and ke = 1: the charge-product columns of chimes_lsq's design matrix.
    """
    return coulomb_pair_terms(positions, lengths, types, pair_of, npairs, params).forces


def coulomb_energy_forces(positions, lengths, charges, params: EwaldParameters | None = None):
    """(energy, forces (natoms, 3)) of the truncated Ewald sum for per-atom ``charges`` (ke = 1)."""
    pos, L, params, nvec = _prepare(positions, lengths, params)
    q = np.ascontiguousarray(charges, dtype=np.float64).reshape(-1)
    if q.shape[0] != pos.shape[0]:
        raise ValueError(f"charges has {q.shape[0]} entries for {pos.shape[0]} atoms")
    one = np.zeros(pos.shape[0], dtype=np.int64)
    terms = _terms(pos, L, params, nvec, one, np.zeros((1, 1), dtype=np.int64), 1, q)
    return float(terms.energy[0]), terms.forces[:, :, 0]


def coulomb_energy(positions, lengths, charges, params: EwaldParameters | None = None) -> float:
    """Energy of the truncated Ewald sum: real + reciprocal - alpha/sqrt(pi) sum q_i^2 (ke = 1)."""
    return coulomb_energy_forces(positions, lengths, charges, params)[0]


def coulomb_forces(positions, lengths, charges, params: EwaldParameters | None = None) -> np.ndarray:
    """Forces (natoms, 3) of the truncated Ewald sum for per-atom ``charges`` (ke = 1)."""
    return coulomb_energy_forces(positions, lengths, charges, params)[1]
