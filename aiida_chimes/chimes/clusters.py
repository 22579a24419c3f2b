"""Periodic images and linear-scaling half neighbour lists (cell lists) for ChIMES cluster enumeration.

Every 2-, 3- and 4-body cluster of a periodic system is enumerated once per translation class: from the
member with the lowest atom index ("home" atom, in the cell), over its half neighbour list (neighbours whose
parent index is >= the home index).  When several members are images of the home atom (cells shorter than
the cutoff) the class is met m times and each meeting is weighted 1/m, which gives exactly the energy of a
large enough supercell, per cell.
"""

import itertools

import numpy as np
from numba import njit, prange


def wrap_and_replicate(positions, cell, pbc, rcut):
    """Wrap atoms into the cell and add every periodic image within ``rcut`` of it.

    Returns (ext_positions, parent): the first N rows are the wrapped atoms themselves, ``parent[k]`` is the
    atom a row is an image of.  Non-periodic directions get no images and no wrapping.
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    cell = np.asarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    if not pbc.any():
        return positions.copy(), np.arange(n, dtype=np.int64)
    if abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError("periodic cell has zero volume")
    frac = np.linalg.solve(cell.T, positions.T).T
    frac[:, pbc] -= np.floor(frac[:, pbc])
    frac[:, pbc] = np.where(frac[:, pbc] >= 1.0, 0.0, frac[:, pbc])
    volume = abs(np.linalg.det(cell))
    heights = np.array([volume / np.linalg.norm(np.cross(cell[(a + 1) % 3], cell[(a + 2) % 3])) for a in range(3)])
    reach = np.where(pbc, rcut / heights, 0.0)
    nshift = np.where(pbc, np.ceil(reach).astype(int), 0)
    home = frac @ cell
    ext = [home]
    par = [np.arange(n, dtype=np.int64)]
    for shift in itertools.product(*(range(-k, k + 1) for k in nshift)):
        if shift == (0, 0, 0):
            continue
        f = frac + np.array(shift, dtype=np.float64)
        keep = np.all((f >= -reach - 1e-12) & (f <= 1.0 + reach + 1e-12), axis=1)
        if keep.any():
            ext.append(f[keep] @ cell)
            par.append(np.nonzero(keep)[0].astype(np.int64))
    return np.ascontiguousarray(np.concatenate(ext)), np.concatenate(par)


@njit(cache=True)
def _bin_points(ext, rcut):
    lo = np.empty(3)
    nbin = np.empty(3, dtype=np.int64)
    for d in range(3):
        lo[d] = ext[:, d].min() - 1e-9
        span = ext[:, d].max() + 1e-9 - lo[d]
        nbin[d] = max(1, min(int(span / rcut), 100))
    width = np.empty(3)
    for d in range(3):
        width[d] = (ext[:, d].max() + 1e-9 - lo[d]) / nbin[d]
    m = ext.shape[0]
    bin_of = np.empty(m, dtype=np.int64)
    for k in range(m):
        b = 0
        for d in range(3):
            c = int((ext[k, d] - lo[d]) / width[d])
            c = min(max(c, 0), nbin[d] - 1)
            b = b * nbin[d] + c
        bin_of[k] = b
    nb = nbin[0] * nbin[1] * nbin[2]
    start = np.zeros(nb + 1, dtype=np.int64)
    for k in range(m):
        start[bin_of[k] + 1] += 1
    for b in range(nb):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    members = np.empty(m, dtype=np.int64)
    for k in range(m):  # stable: members of a bin stay in index order
        members[fill[bin_of[k]]] = k
        fill[bin_of[k]] += 1
    return lo, width, nbin, start, members


@njit(cache=True)
def _scan_home(i, ext, parent, rcut2, lo, width, nbin, start, members, out_j, out_r, out_dr, write):
    """Visit the half neighbours of home atom i; store them when ``write`` (from offset 0 of out_*)."""
    c = np.empty(3, dtype=np.int64)
    for d in range(3):
        c[d] = min(max(int((ext[i, d] - lo[d]) / width[d]), 0), nbin[d] - 1)
    count = 0
    for ax in range(max(c[0] - 1, 0), min(c[0] + 2, nbin[0])):
        for ay in range(max(c[1] - 1, 0), min(c[1] + 2, nbin[1])):
            for az in range(max(c[2] - 1, 0), min(c[2] + 2, nbin[2])):
                b = (ax * nbin[1] + ay) * nbin[2] + az
                for q in range(start[b], start[b + 1]):
                    j = members[q]
                    if j == i or parent[j] < i:
                        continue
                    dx = ext[j, 0] - ext[i, 0]
                    dy = ext[j, 1] - ext[i, 1]
                    dz = ext[j, 2] - ext[i, 2]
                    r2 = dx * dx + dy * dy + dz * dz
                    if r2 < rcut2:
                        if write:
                            out_j[count] = j
                            out_r[count] = np.sqrt(r2)
                            out_dr[count, 0] = dx
                            out_dr[count, 1] = dy
                            out_dr[count, 2] = dz
                        count += 1
    return count


@njit(cache=True, parallel=True)
def half_neighbor_list(n_home, ext, parent, rcut):
    """Half neighbour list of the first ``n_home`` rows of ``ext`` as CSR arrays.

    Returns (start, j, r, dr): neighbours of home atom i are rows start[i]:start[i+1]; ``j`` indexes ``ext``;
    ``dr = ext[j] - ext[i]``.  Neighbours are those with parent >= i (and not i itself), within rcut.
    """
    lo, width, nbin, bstart, members = _bin_points(ext, rcut)
    rcut2 = rcut * rcut
    counts = np.zeros(n_home + 1, dtype=np.int64)
    dummy_j = np.empty(0, dtype=np.int64)
    dummy_r = np.empty(0)
    dummy_dr = np.empty((0, 3))
    for i in prange(n_home):
        counts[i + 1] = _scan_home(i, ext, parent, rcut2, lo, width, nbin, bstart, members,
                                   dummy_j, dummy_r, dummy_dr, False)
    for i in range(n_home):
        counts[i + 1] += counts[i]
    total = counts[n_home]
    nj = np.empty(total, dtype=np.int64)
    nr = np.empty(total)
    ndr = np.empty((total, 3))
    for i in prange(n_home):
        a = counts[i]
        b = counts[i + 1]
        _scan_home(i, ext, parent, rcut2, lo, width, nbin, bstart, members, nj[a:b], nr[a:b], ndr[a:b], True)
    return counts, nj, nr, ndr


@njit(cache=True)
def filter_neighbors(start, nj, nr, rcut):
    """Sub-list of a CSR neighbour list keeping r < rcut (used for the shorter many-body cutoffs)."""
    n = start.shape[0] - 1
    keep = nr < rcut
    new_start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        c = 0
        for q in range(start[i], start[i + 1]):
            if keep[q]:
                c += 1
        new_start[i + 1] = new_start[i] + c
    idx = np.empty(new_start[n], dtype=np.int64)
    k = 0
    for q in range(start[n]):
        if keep[q]:
            idx[k] = q
            k += 1
    return new_start, idx
