"""Design-matrix rows of a ChIMES fit, one training frame at a time, exactly as chimes_lsq defines them.

Each element is the derivative of an observable (force component, stress component, energy) with respect
to one fitted coefficient.  Rows per frame: Fx Fy Fz of every atom, then 3 (xx yy zz) or 9 (xx xy xz yx yy yz
zx zy zz) stress rows when stresses are fitted for that frame, then the energy row three times when energies
are fitted ("for historical reasons", as chimes_lsq does).  Columns follow
:func:`~aiida_chimes.chimes.fit_basis.column_layout`.

chimes_lsq conventions kept on purpose (they define the fitted model):

* a pair enters the 2-body columns only for S_MINIM < r < S_MAXIM (no inner extrapolation, no penalty);
* in a 3-/4-body cluster a distance below its inner cutoff uses the polynomials at the inner cutoff; its own
  force contribution is dropped for 3-body clusters and kept for 4-body clusters (``Cheby.C Deriv_3B/4B``);
* stress rows are -(1/V) sum_pairs (dE/dr) r_a r_b / r, in kcal/mol/A^3; b holds GPa / 6.9476955;
* with FITCOUL, one column per pair type holds the Ewald Coulomb force per unit charge product
  (:mod:`~aiida_chimes.chimes.ewald`, chimes_lsq's truncation) in the force rows; chimes_lsq writes no charge
  columns in stress or energy rows, so FITCOUL fits forces only.

Cluster enumeration reuses the evaluator's neighbour lists (each cluster once per translation class), so a
frame's rows times a coefficient vector equal the evaluator's forces, stress and energy of those coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .basis import chebyshev, cutoff, morse_scaling
from .clusters import filter_neighbors, half_neighbor_list, wrap_and_replicate
from .evaluate import ChimesModel, _separation
from .ewald import coulomb_force_columns, orthorhombic_lengths
from .fit_basis import column_layout
from .params import ChimesParams
from .units import GPA_PER_KCALMOL_A3_LSQ

STRESS_LABELS_ALL = ("s_xx", "s_xy", "s_xz", "s_yx", "s_yy", "s_yz", "s_zx", "s_zy", "s_zz")
STRESS_LABELS_DIAG = ("s_xx", "s_yy", "s_zz")
_ALL_INDEX = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2))
_DIAG_INDEX = ((0, 0), (1, 1), (2, 2))
#: xyzf stress order xx yy zz xy xz yz -> 3x3 position
_XYZF_STRESS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))

FORCE, ENERGY, STRESS, CONSTRAINT = 0, 1, 2, 3


@dataclass
class FrameRows:
    """The rows of one frame: A (n, M), b (n,), labels, class codes (0 force, 1 energy, 2 stress), atoms."""

    A: np.ndarray
    b: np.ndarray
    labels: list[str]
    classes: np.ndarray
    natoms: int


@dataclass
class _BodyTables:
    block_of: np.ndarray
    slot_pair: np.ndarray
    rin: np.ndarray
    rout: np.ndarray
    lam: np.ndarray
    xavg: np.ndarray
    xdiff: np.ndarray
    blk_col: np.ndarray  # first A column of each block (-1 excluded)
    blk_nu: np.ndarray  # number of unique columns of each block
    row_start: np.ndarray  # (nblock + 1,) rows of each block
    row_pow: np.ndarray  # (nrows, npair) powers, sorted within each block
    row_col: np.ndarray  # (nrows,) column of each row within its block (param index)
    row_diff: np.ndarray  # first slot where a row differs from the previous one
    order: int
    rcut: float


class DesignBuilder:
    """Builds the chimes_lsq rows of frames for one fitted basis (a params.header skeleton)."""

    def __init__(self, basis: ChimesParams, fit_energy: bool):
        self.basis = basis
        self.fit_energy = bool(fit_energy)
        self.layout = column_layout(basis, self.fit_energy)
        self.ncols = self.layout.ncols
        self.model = ChimesModel(basis)  # neighbour search, type and cluster maps
        m = self.model
        self.pair_col = self.layout.pair_offset
        self.t3 = self._body(3)
        self.t4 = self._body(4)
        cuts = [float(m.p_rout.max())] + [t.rcut for t in (self.t3, self.t4)]
        self.rcut = max(cuts)

    def _body(self, nbody: int) -> _BodyTables:
        p = self.basis
        m = self.model
        nt = len(p.types)
        npair = nbody * (nbody - 1) // 2
        blocks = p.triplets if nbody == 3 else p.quadruplets
        order = p.orders[1] if nbody == 3 else p.orders[2]
        offs = self.layout.triplet_offset if nbody == 3 else self.layout.quad_offset
        src = m.t3 if nbody == 3 else m.t4
        if order <= 0 or src is None or not blocks:
            return _BodyTables(np.full((nt,) * nbody, -1, np.int64), np.zeros((nt,) * nbody + (npair,), np.int64),
                               np.zeros((1, npair)), np.zeros((1, npair)), np.ones((1, npair)),
                               np.zeros((1, npair)), np.ones((1, npair)), np.full(1, -1, np.int64),
                               np.zeros(1, np.int64), np.zeros(2, np.int64), np.zeros((1, npair), np.uint8),
                               np.zeros(1, np.int64), np.zeros(1, np.uint8), 0, 0.0)
        nb = len(blocks)
        names = {}
        for k, q in enumerate(p.pairs):
            names[q.name] = names[q.atom2 + q.atom1] = k
        rin = np.zeros((nb, npair))
        rout = np.zeros((nb, npair))
        lam = np.ones((nb, npair))
        for b, blk in enumerate(blocks):
            for s, nm in enumerate(blk.pairs):
                q = p.pairs[names[nm]]
                rin[b, s], rout[b, s], lam[b, s] = q.s_minim, q.s_maxim, q.morse_lambda
        body = f"{nbody}B"
        keymap = {k: v for v, k in (p.tripmaps if nbody == 3 else p.quadmaps)}
        for kind, arr in (("S_MINIM", rin), ("S_MAXIM", rout)):
            spec = p.special.get((body, kind))
            if spec is None:
                continue
            if spec.mode == "ALL":
                arr[:, :] = spec.value
                continue
            for key, _pn, vals in spec.entries:  # resolved per cluster slot by fit_basis
                b = keymap[key]
                if b >= 0:
                    arr[b, :] = vals
        xavg = np.zeros((nb, npair))
        xdiff = np.ones((nb, npair))
        for b in range(nb):
            for s in range(npair):
                xavg[b, s], xdiff[b, s] = morse_scaling(rin[b, s], rout[b, s], lam[b, s])
        # every coefficient row of a block, sorted lexicographically, with its column and the first slot where
        # its powers differ from the previous row (prefix products are reused from there on)
        blk_col = np.full(nb, -1, np.int64)
        blk_nu = np.zeros(nb, np.int64)
        starts = [0]
        pows, cols, diffs = [], [], []
        used = np.zeros(nb, dtype=bool)
        for b, blk in enumerate(blocks):
            if blk.excluded or blk.unique == 0:
                starts.append(starts[-1])
                continue
            used[b] = True
            blk_col[b] = offs[b]
            blk_nu[b] = blk.unique
            order_rows = np.lexsort(blk.powers.T[::-1])
            rows = blk.powers[order_rows]
            d = np.zeros(len(rows), dtype=np.int64)
            if len(rows) > 1:
                d[1:] = np.argmax(rows[1:] != rows[:-1], axis=1)
            pows.append(rows)
            cols.append(blk.param[order_rows])
            diffs.append(d)
            starts.append(starts[-1] + len(rows))
        rcut = float(rout[used].max()) if used.any() else 0.0
        return _BodyTables(
            src.block_of, src.slot_pair, rin, rout, lam, xavg, xdiff, blk_col, blk_nu,
            np.array(starts, np.int64),
            np.ascontiguousarray(np.concatenate(pows), dtype=np.uint8) if pows else np.zeros((1, npair), np.uint8),
            np.concatenate(cols).astype(np.int64) if cols else np.zeros(1, np.int64),
            (np.concatenate(diffs) if diffs else np.zeros(1)).astype(np.uint8),
            max(order - 1, 0), rcut,
        )

    # ------------------------------------------------------------------ rows
    def derivatives(self, symbols, positions, cell):
        """Per-column force derivatives (n, 3, M), stress (3, 3, M; kcal/mol/A^3) and energy (M,) of a cell."""
        m = self.model
        types = m.types_of(symbols)
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        n = len(types)
        pbc = np.ones(3, dtype=bool)
        ext, parent = wrap_and_replicate(positions, cell, pbc, self.rcut)
        start, nj, nr, ndr = half_neighbor_list(n, ext, parent, self.rcut)
        t3, t4 = self.t3, self.t4
        empty = np.zeros(1, dtype=np.int64)
        s3, i3 = filter_neighbors(start, nj, nr, t3.rcut) if t3.rcut > 0 else (np.zeros(n + 1, np.int64), empty)
        s4, i4 = filter_neighbors(start, nj, nr, t4.rcut) if t4.rcut > 0 else (np.zeros(n + 1, np.int64), empty)
        dF, vir, dE = _design_kernel(
            types, parent, start, nj, nr, ndr, s3, i3, s4, i4, self.ncols,
            m.pair_of, m.p_rin, m.p_rout, m.p_lam, m.p_xavg, m.p_xdiff, self.pair_col, self.layout.order2,
            m.fcut_type, m.fcut_var,
            t3.block_of, t3.slot_pair, t3.rin, t3.rout, t3.lam, t3.xavg, t3.xdiff, t3.blk_col,
            t3.blk_nu, t3.row_start, t3.row_pow, t3.row_col, t3.row_diff, t3.order, t3.rcut,
            t4.block_of, t4.slot_pair, t4.rin, t4.rout, t4.lam, t4.xavg, t4.xdiff, t4.blk_col,
            t4.blk_nu, t4.row_start, t4.row_pow, t4.row_col, t4.row_diff, t4.order, t4.rcut,
        )
        if self.layout.charge_offset >= 0:
            c0 = self.layout.charge_offset
            dF[:, :, c0 : c0 + len(self.basis.pairs)] = coulomb_force_columns(
                positions, orthorhombic_lengths(cell), types, m.pair_of, len(self.basis.pairs))
        volume = abs(float(np.linalg.det(cell)))
        stress = -vir / volume  # (3, 3, M)
        for t in range(len(types)):
            c = self.layout.energy_offset[types[t]]
            if c >= 0:
                dE[c] += 1.0
        return dF, stress, dE

    def constraint_rows(self, lines) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``CHARGE CONSTRAINTS`` lines (``P1 .. Pn c1 .. cn value``): c_k in the charge-product
        column of pair P_k, the value in b (chimes_lsq ``PRINT_CONSTRAINTS``); (0, M) and (0,) without any."""
        A = np.zeros((len(lines), self.ncols))
        b = np.zeros(len(lines))
        if not len(lines):
            return A, b
        c0 = self.layout.charge_offset
        if c0 < 0:
            raise ValueError("charge constraints need FITCOUL true (charge-product columns)")
        pairs = self.basis.pairs
        names = {}
        for k, q in enumerate(pairs):
            names[q.atom1 + q.atom2] = names[q.atom2 + q.atom1] = k
        n = len(pairs)
        for i, line in enumerate(lines):
            fields = line.split()
            for name, coef in zip(fields[:n], fields[n : 2 * n], strict=True):
                A[i, c0 + names[name]] = float(coef)
            b[i] = float(fields[2 * n])
        return A, b

    def frame_rows(self, frame, stress_mode: str = "none", fit_energy: bool = False, flags=("", "", "")) -> FrameRows:
        """Rows, right-hand side and labels of one :class:`~aiida_chimes.chimes.io.xyzf.XyzfFrame`."""
        n = len(frame.symbols)
        dF, stress, dE = self.derivatives(frame.symbols, frame.positions, frame.cell)
        blocks = [dF.reshape(3 * n, self.ncols)]
        b = [np.asarray(frame.forces, dtype=np.float64).reshape(3 * n)]
        labels = [flags[0] + s for s in frame.symbols for _ in range(3)]
        classes = [np.full(3 * n, FORCE, np.int8)]
        if stress_mode != "none":
            if frame.stress is None:
                raise ValueError("stresses are fitted for this frame but its .xyzf comment line has none")
            sig = np.zeros((3, 3))
            given = np.asarray(frame.stress, dtype=np.float64)
            if stress_mode == "all" and len(given) < 6:
                raise ValueError("FITSTRS ALL needs 6 stress components (xx yy zz xy xz yz) on the comment line")
            for k, (a, c) in enumerate(_XYZF_STRESS[: len(given)]):
                sig[a, c] = sig[c, a] = given[k] / GPA_PER_KCALMOL_A3_LSQ
            idx = _ALL_INDEX if stress_mode == "all" else _DIAG_INDEX
            names = STRESS_LABELS_ALL if stress_mode == "all" else STRESS_LABELS_DIAG
            blocks.append(np.array([stress[a, c] for a, c in idx]))
            b.append(np.array([sig[a, c] for a, c in idx]))
            labels += [flags[1] + s for s in names]
            classes.append(np.full(len(idx), STRESS, np.int8))
        if fit_energy:
            if frame.energy is None:
                raise ValueError("energies are fitted for this frame but its .xyzf comment line has none")
            if not self.fit_energy:
                raise ValueError("this builder was made without energy-offset columns (fit_energy=False)")
            blocks.append(np.repeat(dE[None, :], 3, axis=0))
            b.append(np.full(3, float(frame.energy)))
            labels += [flags[2] + "+1"] * 3
            classes.append(np.full(3, ENERGY, np.int8))
        return FrameRows(np.vstack(blocks), np.concatenate(b), labels, np.concatenate(classes), n)


# ====================================================================== numba kernel
@njit(cache=True, inline="always")
def _scatter(c0, nu, s, w, a, b, r, dx, dy, dz, dcol, dF, vir):
    """Add the pair-s derivatives of columns c0..c0+nu-1 to the force rows of atoms a, b and the virial.

    dF is (atoms, 3, columns) and vir (3, 3, columns): the columns of one block are contiguous.
    """
    inv = w / r
    for u in range(nu):
        fs = dcol[s, u] * inv
        fx = fs * dx
        fy = fs * dy
        fz = fs * dz
        col = c0 + u
        dF[a, 0, col] += fx
        dF[a, 1, col] += fy
        dF[a, 2, col] += fz
        dF[b, 0, col] -= fx
        dF[b, 1, col] -= fy
        dF[b, 2, col] -= fz
        vir[0, 0, col] += fx * dx
        vir[0, 1, col] += fx * dy
        vir[0, 2, col] += fx * dz
        vir[1, 1, col] += fy * dy
        vir[1, 2, col] += fy * dz
        vir[2, 2, col] += fz * dz


@njit(cache=True)
def _cluster_columns(nb, rr, blk, sp, rin, rout, lam, xavg, xdiff, blk_nu, row_start, row_pow, row_col, row_diff,
                     order, fct, fvar, T, dT, fc, dfc, fo, P, ecol, gcol, dcol):
    """Per-column energy ecol[u] and dE/dr of each runtime pair dcol[pair, u] of one cluster; False if out.

    The block's rows are sorted, so the prefix products P of a row are reused from its first differing slot;
    a backward pass over the slots gives the value and the derivative with respect to every slot.
    """
    npair = nb * (nb - 1) // 2
    for s in range(npair):
        if rr[sp[s]] >= rout[blk, s]:
            return False
    for s in range(npair):
        r = rr[sp[s]]
        reff = r if r >= rin[blk, s] else rin[blk, s]
        chebyshev(reff, rin[blk, s], lam[blk, s], xavg[blk, s], xdiff[blk, s], order, T[s], dT[s])
        f, df = cutoff(r, rout[blk, s], fct, fvar)
        fc[s] = f
        dfc[s] = df
    ftot = 1.0
    for s in range(npair):
        ftot *= fc[s]
    for s in range(npair):
        other = 1.0
        for q in range(npair):
            if q != s:
                other *= fc[q]
        fo[s] = dfc[s] * other
    nu = blk_nu[blk]
    for u in range(nu):
        ecol[u] = 0.0
    for s in range(npair):
        for u in range(nu):
            gcol[s, u] = 0.0
    P[0] = 1.0
    r0 = row_start[blk]
    for m in range(r0, row_start[blk + 1]):
        d = row_diff[m] if m > r0 else 0
        for k in range(d, npair - 1):
            P[k + 1] = P[k] * T[k, row_pow[m, k]]
        u = row_col[m]
        q = 1.0
        for k in range(npair - 1, -1, -1):
            pk = row_pow[m, k]
            gcol[k, u] += P[k] * dT[k, pk] * q
            q *= T[k, pk]
        ecol[u] += q
    for s in range(npair):
        zero = nb == 3 and rr[sp[s]] < rin[blk, s]  # chimes_lsq Deriv_3B: FORCE_IS_ZERO below the inner cutoff
        t = sp[s]
        for u in range(nu):
            dcol[t, u] = 0.0 if zero else ftot * gcol[s, u] + ecol[u] * fo[s]
    for u in range(nu):
        ecol[u] *= ftot
    return True


@njit(cache=True)
def _design_kernel(types, parent, start, nj, nr, ndr, s3, i3, s4, i4, ncols,
                   pair_of, p_rin, p_rout, p_lam, p_xavg, p_xdiff, pair_col, order2, fct, fvar,
                   b3, sp3, rin3, rout3, lam3, xavg3, xdiff3, bc3, bn3, rs3, rp3, rcol3, rd3, o3, rc3,
                   b4, sp4, rin4, rout4, lam4, xavg4, xdiff4, bc4, bn4, rs4, rp4, rcol4, rd4, o4, rc4):
    n = types.shape[0]
    dF = np.zeros((n, 3, ncols))
    vir = np.zeros((3, 3, ncols))
    dE = np.zeros(ncols)
    maxo = max(order2, o3, o4) + 1
    T = np.empty((6, maxo))
    dT = np.empty((6, maxo))
    fc = np.empty(6)
    dfc = np.empty(6)
    fo = np.empty(6)
    P = np.empty(7)
    rr = np.empty(6)
    maxu = max(1, order2)
    for b in range(bn3.shape[0]):
        maxu = max(maxu, bn3[b])
    for b in range(bn4.shape[0]):
        maxu = max(maxu, bn4[b])
    ecol = np.empty(maxu)
    dcol = np.zeros((6, maxu))
    gcol = np.zeros((6, maxu))
    for i in range(n):
        ti = types[i]
        # ---------------- 2-body: S_MINIM < r < S_MAXIM only
        for q in range(start[i], start[i + 1]):
            j = parent[nj[q]]
            pt = pair_of[ti, types[j]]
            c0 = pair_col[pt]
            if c0 < 0:
                continue
            r = nr[q]
            if r >= p_rout[pt] or r <= p_rin[pt]:
                continue
            w = 0.5 if j == i else 1.0
            chebyshev(r, p_rin[pt], p_lam[pt], p_xavg[pt], p_xdiff[pt], order2, T[0], dT[0])
            f, df = cutoff(r, p_rout[pt], fct, fvar)
            for k in range(order2):
                dE[c0 + k] += w * f * T[0, k + 1]
                dcol[0, k] = f * dT[0, k + 1] + df * T[0, k + 1]
            _scatter(c0, order2, 0, w, i, j, r, ndr[q, 0], ndr[q, 1], ndr[q, 2], dcol, dF, vir)
        # ---------------- 3-body
        if rc3 > 0.0:
            for a in range(s3[i], s3[i + 1]):
                qa = i3[a]
                j = parent[nj[qa]]
                tj = types[j]
                for bq in range(a + 1, s3[i + 1]):
                    qb = i3[bq]
                    dx, dy, dz, rjk = _separation(ndr, qa, qb)
                    if rjk >= rc3:
                        continue
                    k = parent[nj[qb]]
                    tk = types[k]
                    blk = b3[ti, tj, tk]
                    if blk < 0:
                        continue
                    rr[0] = nr[qa]
                    rr[1] = nr[qb]
                    rr[2] = rjk
                    if not _cluster_columns(3, rr, blk, sp3[ti, tj, tk], rin3, rout3, lam3, xavg3, xdiff3, bn3,
                                            rs3, rp3, rcol3, rd3, o3, fct, fvar, T, dT, fc, dfc, fo, P,
                                            ecol, gcol, dcol):
                        continue
                    m = 1
                    if j == i:
                        m += 1
                    if k == i:
                        m += 1
                    w = 1.0 / m
                    c0 = bc3[blk]
                    nu = bn3[blk]
                    for u in range(nu):
                        dE[c0 + u] += w * ecol[u]
                    _scatter(c0, nu, 0, w, i, j, rr[0], ndr[qa, 0], ndr[qa, 1], ndr[qa, 2], dcol, dF, vir)
                    _scatter(c0, nu, 1, w, i, k, rr[1], ndr[qb, 0], ndr[qb, 1], ndr[qb, 2], dcol, dF, vir)
                    _scatter(c0, nu, 2, w, j, k, rjk, dx, dy, dz, dcol, dF, vir)
        # ---------------- 4-body
        if rc4 > 0.0:
            s4a = s4[i]
            s4b = s4[i + 1]
            for a in range(s4a, s4b):
                qa = i4[a]
                j = parent[nj[qa]]
                tj = types[j]
                for bq in range(a + 1, s4b):
                    qb = i4[bq]
                    djk0, djk1, djk2, rjk = _separation(ndr, qa, qb)
                    if rjk >= rc4:
                        continue
                    k = parent[nj[qb]]
                    tk = types[k]
                    for cq in range(bq + 1, s4b):
                        qc = i4[cq]
                        djl0, djl1, djl2, rjl = _separation(ndr, qa, qc)
                        if rjl >= rc4:
                            continue
                        dkl0, dkl1, dkl2, rkl = _separation(ndr, qb, qc)
                        if rkl >= rc4:
                            continue
                        l = parent[nj[qc]]
                        tl = types[l]
                        blk = b4[ti, tj, tk, tl]
                        if blk < 0:
                            continue
                        rr[0] = nr[qa]
                        rr[1] = nr[qb]
                        rr[2] = nr[qc]
                        rr[3] = rjk
                        rr[4] = rjl
                        rr[5] = rkl
                        if not _cluster_columns(4, rr, blk, sp4[ti, tj, tk, tl], rin4, rout4, lam4, xavg4, xdiff4,
                                                bn4, rs4, rp4, rcol4, rd4, o4, fct, fvar, T, dT, fc, dfc,
                                                fo, P, ecol, gcol, dcol):
                            continue
                        m = 1
                        if j == i:
                            m += 1
                        if k == i:
                            m += 1
                        if l == i:
                            m += 1
                        w = 1.0 / m
                        c0 = bc4[blk]
                        nu = bn4[blk]
                        for u in range(nu):
                            dE[c0 + u] += w * ecol[u]
                        _scatter(c0, nu, 0, w, i, j, rr[0], ndr[qa, 0], ndr[qa, 1], ndr[qa, 2], dcol, dF, vir)
                        _scatter(c0, nu, 1, w, i, k, rr[1], ndr[qb, 0], ndr[qb, 1], ndr[qb, 2], dcol, dF, vir)
                        _scatter(c0, nu, 2, w, i, l, rr[2], ndr[qc, 0], ndr[qc, 1], ndr[qc, 2], dcol, dF, vir)
                        _scatter(c0, nu, 3, w, j, k, rjk, djk0, djk1, djk2, dcol, dF, vir)
                        _scatter(c0, nu, 4, w, j, l, rjl, djl0, djl1, djl2, dcol, dF, vir)
                        _scatter(c0, nu, 5, w, k, l, rkl, dkl0, dkl1, dkl2, dcol, dF, vir)
    for a in range(3):
        for b in range(a):
            for c in range(ncols):
                vir[a, b, c] = vir[b, a, c]
    return dF, vir, dE
