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

:func:`coulomb_energy` and :func:`coulomb_forces` evaluate the same truncated sum for given per-atom charges;
``coulomb_forces(q)`` equals ``sum_p columns[:, :, p] * q_A q_B``.  The energy is real + reciprocal - self
(alpha/sqrt(pi) sum q_i^2); the uniform-background term -pi Q^2 / (2 V alpha^2) of charged cells is not included.
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
    L = np.asarray(lengths, dtype=np.float64).reshape(-1)
    if L.shape != (3,):
        raise ValueError(f"box lengths must be 3 numbers (orthorhombic cell), got {np.asarray(lengths)!r}")
    if not np.all(np.isfinite(L)) or np.any(L <= 0):
        raise ValueError(f"box lengths must be positive and finite, got {L.tolist()}")
    return L


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
    count = 0
    for nx in range(0, kmax + 1):
        for ny in range(-kmax, kmax + 1):
            for nz in range(-kmax, kmax + 1):
                nsq = nx * nx + ny * ny + nz * nz
                if nsq == 0 or nsq >= nsq_max:
                    continue
                if nx == 0 and (ny < 0 or (ny == 0 and nz < 0)):
                    continue
                count += 1
    out = np.empty((count, 3), dtype=np.int64)
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
    return out


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
def _real_columns(pos, lengths, types, pair_of, rc, alpha, out):
    """Add the real-space force columns (each pair once, Newton's third law) to out (n, 3, npairs)."""
    n = pos.shape[0]
    rc2 = rc * rc
    Lx = lengths[0]
    Ly = lengths[1]
    Lz = lengths[2]
    for i in range(n - 1):
        for j in range(i + 1, n):
            p = pair_of[types[i], types[j]]
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
                        dz = dz0 + mz * Lz
                        r2 = dxy2 + dz * dz
                        if r2 >= rc2:
                            continue
                        g = _real_force_factor(math.sqrt(r2), alpha)
                        out[i, 0, p] += g * dx
                        out[i, 1, p] += g * dy
                        out[i, 2, p] += g * dz
                        out[j, 0, p] -= g * dx
                        out[j, 1, p] -= g * dy
                        out[j, 2, p] -= g * dz


@njit(cache=True)
def _recip_columns(pos, lengths, types, pair_of, ntypes, nvec, kmax, alpha, out):
    """Add the reciprocal-space force columns to out (n, 3, npairs), via per-type structure factors."""
    n = pos.shape[0]
    kvec, coef = _kspace_setup(nvec, lengths, alpha)
    ct, st = _phase_tables(pos, lengths, kmax)
    c = np.empty(n)
    s = np.empty(n)
    csum = np.empty(ntypes)
    ssum = np.empty(ntypes)
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
            csum[types[i]] += ci
            ssum[types[i]] += si
        kx = kvec[m, 0] * coef[m]
        ky = kvec[m, 1] * coef[m]
        kz = kvec[m, 2] * coef[m]
        for i in range(n):
            ti = types[i]
            for b in range(ntypes):
                # sum over j of type b of sin(k.(r_i - r_j))
                val = s[i] * csum[b] - c[i] * ssum[b]
                p = pair_of[ti, b]
                out[i, 0, p] += kx * val
                out[i, 1, p] += ky * val
                out[i, 2, p] += kz * val


@njit(cache=True)
def _real_charges(pos, lengths, q, rc, alpha, forces):
    """Real-space energy (returned) and forces (added) for per-atom charges, self images included in the energy."""
    n = pos.shape[0]
    rc2 = rc * rc
    Lx = lengths[0]
    Ly = lengths[1]
    Lz = lengths[2]
    energy = 0.0
    for i in range(n):
        for j in range(i, n):
            qq = q[i] * q[j]
            # the j == i images pair up (m, -m): zero force, half weight in the energy
            w = 0.5 if j == i else 1.0
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
                        energy += w * qq * math.erfc(alpha * r) / r
                        if j != i:
                            g = qq * _real_force_factor(r, alpha)
                            forces[i, 0] += g * dx
                            forces[i, 1] += g * dy
                            forces[i, 2] += g * dz
                            forces[j, 0] -= g * dx
                            forces[j, 1] -= g * dy
                            forces[j, 2] -= g * dz
    return energy


@njit(cache=True)
def _recip_charges(pos, lengths, q, nvec, kmax, alpha, forces):
    """Reciprocal-space energy (returned) and forces (added) for per-atom charges."""
    n = pos.shape[0]
    kvec, coef = _kspace_setup(nvec, lengths, alpha)
    ct, st = _phase_tables(pos, lengths, kmax)
    c = np.empty(n)
    s = np.empty(n)
    energy = 0.0
    for m in range(nvec.shape[0]):
        nx = nvec[m, 0]
        ny = nvec[m, 1]
        nz = nvec[m, 2]
        csum = 0.0
        ssum = 0.0
        for i in range(n):
            ci, si = _phase(ct, st, i, nx, ny, nz)
            c[i] = ci
            s[i] = si
            csum += q[i] * ci
            ssum += q[i] * si
        # coef = 2 * (4pi/V) g(k) covers k and -k; their energy is 2 * (2pi/V) g(k) |S(k)|^2 = coef / 2 * |S|^2
        energy += 0.5 * coef[m] * (csum * csum + ssum * ssum)
        kx = kvec[m, 0] * coef[m]
        ky = kvec[m, 1] * coef[m]
        kz = kvec[m, 2] * coef[m]
        for i in range(n):
            val = q[i] * (s[i] * csum - c[i] * ssum)
            forces[i, 0] += kx * val
            forces[i, 1] += ky * val
            forces[i, 2] += kz * val
    return energy


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


def coulomb_force_columns(positions, lengths, types, pair_of, npairs: int, params: EwaldParameters | None = None):
    """Ewald force columns per unit charge product: array (natoms, 3, npairs).

    ``types`` (natoms,) holds type indices into the symmetric (ntypes, ntypes) ``pair_of`` table of pair-type
    indices in [0, npairs).  Column p of atom i is the force on i from all pairs (i, j) of pair type p (periodic
    images included) with q_i q_j = 1 and ke = 1.  ``params`` defaults to :func:`ewald_parameters`.
    """
    pos, L, params, nvec = _prepare(positions, lengths, params)
    t = np.ascontiguousarray(types, dtype=np.int64).reshape(-1)
    po = np.ascontiguousarray(pair_of, dtype=np.int64)
    npairs = int(npairs)
    if t.shape[0] != pos.shape[0]:
        raise ValueError(f"types has {t.shape[0]} entries for {pos.shape[0]} atoms")
    if po.ndim != 2 or po.shape[0] != po.shape[1]:
        raise ValueError(f"pair_of must be a square (ntypes, ntypes) table, got shape {po.shape}")
    ntypes = po.shape[0]
    if t.min() < 0 or t.max() >= ntypes:
        raise ValueError(f"atom types must lie in [0, {ntypes}), got range [{t.min()}, {t.max()}]")
    if not np.array_equal(po, po.T):
        raise ValueError("pair_of must be symmetric")
    if po.min() < 0 or po.max() >= npairs:
        raise ValueError(f"pair_of entries must lie in [0, {npairs}), got range [{po.min()}, {po.max()}]")
    out = np.zeros((pos.shape[0], 3, npairs))
    _real_columns(pos, L, t, po, params.rcut, params.alpha, out)
    _recip_columns(pos, L, t, po, ntypes, nvec, params.kmax, params.alpha, out)
    return out


def coulomb_energy_forces(positions, lengths, charges, params: EwaldParameters | None = None):
    """(energy, forces (natoms, 3)) of the truncated Ewald sum for per-atom ``charges`` (ke = 1)."""
    pos, L, params, nvec = _prepare(positions, lengths, params)
    q = np.ascontiguousarray(charges, dtype=np.float64).reshape(-1)
    if q.shape[0] != pos.shape[0]:
        raise ValueError(f"charges has {q.shape[0]} entries for {pos.shape[0]} atoms")
    forces = np.zeros((pos.shape[0], 3))
    e_real = _real_charges(pos, L, q, params.rcut, params.alpha, forces)
    e_recip = _recip_charges(pos, L, q, nvec, params.kmax, params.alpha, forces)
    e_self = params.alpha / _SQRT_PI * float(np.dot(q, q))
    return e_real + e_recip - e_self, forces


def coulomb_energy(positions, lengths, charges, params: EwaldParameters | None = None) -> float:
    """Energy of the truncated Ewald sum: real + reciprocal - alpha/sqrt(pi) sum q_i^2 (ke = 1)."""
    return coulomb_energy_forces(positions, lengths, charges, params)[0]


def coulomb_forces(positions, lengths, charges, params: EwaldParameters | None = None) -> np.ndarray:
    """Forces (natoms, 3) of the truncated Ewald sum for per-atom ``charges`` (ke = 1)."""
    return coulomb_energy_forces(positions, lengths, charges, params)[1]
