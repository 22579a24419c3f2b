"""Energy, forces and stress of a ChIMES model (1- to 4-body), as the official calculator defines them.

:class:`ChimesModel` turns a :class:`~aiida_chimes.chimes.params.ChimesParams` into flat typed arrays once;
:meth:`ChimesModel.evaluate` then runs numba kernels over a periodic (any cell shape and size) or open
system.  Units are ChIMES native: kcal/mol, Angstrom, kcal/mol/A, kcal/mol/A^3 (stress pressure-positive).

A FITCOUL model (charge products q_A q_B fitted per pair type) also gets its Coulomb part: the Ewald sum
truncated as chimes_lsq truncates it when fitting (:mod:`~aiida_chimes.chimes.ewald`, parameters from the
number of atoms and the box), so that the model predicts exactly what its fit assumed.  The official
chimes_calculator has no Coulomb term; it needs a fully periodic orthorhombic cell.

Many-body sums use the coefficient rows of each cluster type sorted into a prefix tree over the pair powers:
one pass over the sorted rows gives the cluster energy and the derivative with respect to every pair distance
(reverse accumulation), at about one multiply-add per tree node instead of a full product per row.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from .basis import FCUT_CUBIC, FCUT_TERSOFF, chebyshev, cutoff, morse_scaling, penalty
from .clusters import filter_neighbors, half_neighbor_list, wrap_and_replicate
from .ewald import coulomb_pair_terms, orthorhombic_lengths
from .params import ChimesParams, read_params

#: Work is split into this many fixed chunks of atoms, each with its own accumulators, reduced in a fixed
#: order: results are bit-identical whatever the number of threads.
DEFAULT_CHUNKS = 16

_PAIRS3 = ((0, 1), (0, 2), (1, 2))
_PAIRS4 = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


@dataclass
class EvaluationResult:
    """Energy (kcal/mol), forces (kcal/mol/A), stress (3x3, kcal/mol/A^3, pressure-positive, None when not
    periodic), per-atom energies (kcal/mol) and the number of pairs inside the 2-body penalty region."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray | None
    energies: np.ndarray
    penalty_pairs: int
    volume: float | None


@dataclass
class _ClusterTables:
    """Flat arrays for one body order (3 or 4)."""

    block_of: np.ndarray  # (nt,)*n -> block or -1
    slot_pair: np.ndarray  # (nt,)*n + (npair,) -> runtime pair index per block slot
    rin: np.ndarray  # (nblock, npair)
    rout: np.ndarray
    lam: np.ndarray
    xavg: np.ndarray
    xdiff: np.ndarray
    row_start: np.ndarray  # (nblock + 1,) start of each block's groups
    row_pow: np.ndarray  # (ngroups, npair - 1) powers of the first npair-1 slots, sorted lexicographically
    row_coef: np.ndarray  # (ngroups, order) coefficient of each last-slot power (dense)
    row_diff: np.ndarray  # first level where a group's prefix differs from the previous group
    max_order: int
    rcut: float


class ChimesModel:
    """A ChIMES parameter set compiled into arrays for the numba kernels."""

    def __init__(self, params: ChimesParams | str):
        if not isinstance(params, ChimesParams):
            params = read_params(params)
        self.params = params
        p = params
        nt = len(p.types)
        self.symbols = p.symbols
        self.type_index = {s: i for i, s in enumerate(self.symbols)}
        self.pair_of = np.full((nt, nt), -1, dtype=np.int64)
        for k, q in enumerate(p.pairs):
            a, b = self.type_index[q.atom1], self.type_index[q.atom2]
            self.pair_of[a, b] = self.pair_of[b, a] = k
        self.p_rin = np.array([q.s_minim for q in p.pairs])
        self.p_rout = np.array([q.s_maxim for q in p.pairs])
        self.p_lam = np.array([q.morse_lambda for q in p.pairs])
        scal = [morse_scaling(q.s_minim, q.s_maxim, q.morse_lambda) for q in p.pairs]
        self.p_xavg = np.array([s[0] for s in scal])
        self.p_xdiff = np.array([s[1] for s in scal])
        self.order2 = p.orders[0]
        self.c2 = np.zeros((len(p.pairs), self.order2 + 1))
        for k in range(len(p.pairs)):
            np.add.at(self.c2[k], np.asarray(p.pair_powers[k]) + 1, np.asarray(p.pair_coeffs[k]))
        self.penalty_dist, self.penalty_scaling = p.penalty
        self.fcut_type = FCUT_TERSOFF if p.fcut_type == "TERSOFF" else FCUT_CUBIC
        self.fcut_var = float(p.fcut_var or 0.0)
        self.offsets = np.zeros(nt) if p.energy_offsets is None else np.asarray(p.energy_offsets, float).copy()
        self.t3 = self._tables(3) if p.orders[1] > 0 else None
        self.t4 = self._tables(4) if p.orders[2] > 0 else None
        cuts = [self.p_rout.max()]
        for t in (self.t3, self.t4):
            if t is not None:
                cuts.append(t.rcut)
        self.rcut = float(max(cuts))
        # FITCOUL: q_A q_B per pair type, else None; a fit skeleton has none yet (it may still build design rows)
        self.charge_products = None
        self._coulomb_error = None
        if p.flag("FITCOUL"):
            try:
                self.charge_products = p.charge_products
            except ValueError as exc:
                self._coulomb_error = str(exc)
        elif p.flag("USECOUL"):
            fixed = [t.charge for t in p.types if _nonzero_charge(t.charge)]
            if fixed:
                raise ValueError(f"{p.source}: USECOUL true with fixed atom charges ({', '.join(fixed)}) and "
                                 "FITCOUL false: fixed-charge Coulomb interactions are not evaluated")

    @classmethod
    def from_file(cls, path) -> ChimesModel:
        return cls(read_params(path))

    # ------------------------------------------------------------------ compile cluster tables
    def _tables(self, nbody: int) -> _ClusterTables:
        p = self.params
        nt = len(p.types)
        npair = nbody * (nbody - 1) // 2
        slots = _PAIRS3 if nbody == 3 else _PAIRS4
        blocks = p.triplets if nbody == 3 else p.quadruplets
        maps = dict((key, idx) for idx, key in (p.tripmaps if nbody == 3 else p.quadmaps))
        order = p.orders[1] if nbody == 3 else p.orders[2]
        names = {}
        for k, q in enumerate(p.pairs):
            names[q.name] = k
            names[q.atom2 + q.atom1] = k
        nb = len(blocks)
        rin = np.zeros((nb, npair))
        rout = np.zeros((nb, npair))
        lam = np.ones((nb, npair))
        used = np.zeros(nb, dtype=bool)
        for b, blk in enumerate(blocks):
            for s, nm in enumerate(blk.pairs):
                k = names[nm]
                rin[b, s] = p.pairs[k].s_minim
                rout[b, s] = p.pairs[k].s_maxim
                lam[b, s] = p.pairs[k].morse_lambda
        body = "3B" if nbody == 3 else "4B"
        for kind, arr in (("S_MINIM", rin), ("S_MAXIM", rout)):
            spec = p.special.get((body, kind))
            if spec is None:
                continue
            if spec.mode == "ALL":
                arr[:, :] = spec.value
                continue
            if nbody == 4 and kind == "S_MINIM":
                arr[:, :] = -1.0  # official chimesFF: quads not listed get inner cutoff -1
            for key, pnames, vals in spec.entries:
                b = maps[key]
                if b < 0:
                    continue
                taken = [False] * npair
                for nm, v in zip(pnames, vals, strict=False):
                    for s in range(npair):
                        if not taken[s] and blocks[b].pairs[s] == nm:
                            taken[s] = True
                            arr[b, s] = v
                            break
                    else:
                        raise ValueError(f"{p.source}: SPECIAL {body} {kind} entry {key}: pair {nm} is not in "
                                         f"block {b} (pairs {' '.join(blocks[b].pairs)})")
        xavg = np.zeros((nb, npair))
        xdiff = np.ones((nb, npair))
        for b in range(nb):
            for s in range(npair):
                xavg[b, s], xdiff[b, s] = morse_scaling(rin[b, s], rout[b, s], lam[b, s])

        shape = (nt,) * nbody
        block_of = np.full(shape, -1, dtype=np.int64)
        slot_pair = np.zeros(shape + (npair,), dtype=np.int64)
        runtime_pair = {pr: k for k, pr in enumerate(slots)}
        for tt in itertools.product(range(nt), repeat=nbody):
            key = "".join(p.pairs[self.pair_of[tt[u], tt[v]]].name for u, v in slots)
            b = maps.get(key, -1)
            if b < 0 or blocks[b].excluded:
                continue
            blk = blocks[b]
            for perm in itertools.permutations(range(nbody)):
                if any(self.symbols[tt[perm[s]]] != blk.atoms[s] for s in range(nbody)):
                    continue
                sp = [runtime_pair[tuple(sorted((perm[u], perm[v])))] for u, v in slots]
                ok = all(p.pairs[self.pair_of[tt[perm[u]], tt[perm[v]]]].name == blk.pairs[s]
                         or names.get(blk.pairs[s]) == self.pair_of[tt[perm[u]], tt[perm[v]]]
                         for s, (u, v) in enumerate(slots))
                if ok:
                    block_of[tt] = b
                    slot_pair[tt] = sp
                    used[b] = True
                    break
            else:
                raise ValueError(f"{p.source}: map key {key} points to block {b} (atoms {' '.join(blk.atoms)}), "
                                 f"which does not match the atom types {[self.symbols[t] for t in tt]}")
        # rows: sort, merge duplicates, drop exact zeros; group by the prefix of the first npair-1 powers
        starts = [0]
        pows, coefs, diffs = [], [], []
        width = max(order, 1)
        for blk in blocks:
            if blk.excluded or blk.total == 0:
                starts.append(starts[-1])
                continue
            uniq, inv = np.unique(blk.powers, axis=0, return_inverse=True)
            c = np.zeros(len(uniq))
            np.add.at(c, inv.ravel(), blk.values)
            keep = c != 0.0
            uniq, c = uniq[keep], c[keep]
            prefix = uniq[:, :-1]
            new = np.ones(len(uniq), dtype=bool)
            new[1:] = np.any(prefix[1:] != prefix[:-1], axis=1)
            group = np.cumsum(new) - 1
            gp = prefix[new]
            dense = np.zeros((len(gp), width))
            dense[group, uniq[:, -1]] = c
            d = np.zeros(len(gp), dtype=np.int64)
            if len(gp) > 1:
                d[1:] = np.argmax(gp[1:] != gp[:-1], axis=1)
            pows.append(gp)
            coefs.append(dense)
            diffs.append(d)
            starts.append(starts[-1] + len(gp))
        row_pow = np.concatenate(pows) if pows else np.zeros((0, npair - 1), np.int64)
        rcut = float(rout[used].max()) if used.any() else 0.0
        return _ClusterTables(
            block_of=block_of, slot_pair=slot_pair, rin=rin, rout=rout, lam=lam, xavg=xavg, xdiff=xdiff,
            row_start=np.array(starts, dtype=np.int64), row_pow=np.ascontiguousarray(row_pow, dtype=np.uint8),
            row_coef=np.ascontiguousarray(np.concatenate(coefs)) if coefs else np.zeros((0, width)),
            row_diff=(np.concatenate(diffs) if diffs else np.zeros(0)).astype(np.uint8),
            max_order=max(order - 1, 0), rcut=rcut,
        )

    # ------------------------------------------------------------------ evaluation
    def types_of(self, symbols) -> np.ndarray:
        try:
            return np.array([self.type_index[s] for s in symbols], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"element {exc.args[0]!r} is not an atom type of {self.params.source} "
                             f"(types: {' '.join(self.symbols)})") from None

    def evaluate(self, symbols, positions, cell=None, pbc=True, chunks: int = DEFAULT_CHUNKS,
                 serial_counting: bool = False) -> EvaluationResult:
        """Energy, forces, stress and per-atom energies of one configuration (ChIMES units).

        Every cluster is counted once per translation class, so a cell shorter than the cutoff gives the
        energy per cell of a large enough supercell.  ``serial_counting=True`` reproduces instead how the
        official serial interface (``small=false``) counts clusters that hold several periodic images of one
        atom (more than once); it exists only to compare with that code's outputs.
        """
        if self._coulomb_error:
            raise ValueError(self._coulomb_error)
        types = self.types_of(symbols)
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        n = len(types)
        if positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3), got {positions.shape}")
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
        if cell is None:
            if pbc.any():
                raise ValueError("a periodic evaluation needs a cell (rows = lattice vectors a, b, c)")
            cell = np.zeros((3, 3))
        cell = np.asarray(cell, dtype=np.float64).reshape(3, 3)
        ext, parent = wrap_and_replicate(positions, cell, pbc, self.rcut)
        start, nj, nr, ndr = half_neighbor_list(n, ext, parent, self.rcut)
        empty_i = np.zeros(1, dtype=np.int64)
        t3, t4 = self.t3, self.t4
        if t3 is not None and t3.rcut > 0:
            s3, i3 = filter_neighbors(start, nj, nr, t3.rcut)
        else:
            s3, i3 = np.zeros(n + 1, dtype=np.int64), empty_i
        if t4 is not None and t4.rcut > 0:
            s4, i4 = filter_neighbors(start, nj, nr, t4.rcut)
        else:
            s4, i4 = np.zeros(n + 1, dtype=np.int64), empty_i
        z3 = t3 if t3 is not None else _empty_tables(3, len(self.symbols))
        z4 = t4 if t4 is not None else _empty_tables(4, len(self.symbols))
        nchunk = max(1, min(int(chunks), n))
        energy, forces, virial, eatom, npen = _evaluate_kernel(
            types, parent, start, nj, nr, ndr, s3, i3, s4, i4,
            self.pair_of, self.p_rin, self.p_rout, self.p_lam, self.p_xavg, self.p_xdiff, self.c2, self.order2,
            self.penalty_dist, self.penalty_scaling, self.fcut_type, self.fcut_var, self.offsets,
            z3.block_of, z3.slot_pair, z3.rin, z3.rout, z3.lam, z3.xavg, z3.xdiff,
            z3.row_start, z3.row_pow, z3.row_coef, z3.row_diff, z3.max_order, z3.rcut,
            z4.block_of, z4.slot_pair, z4.rin, z4.rout, z4.lam, z4.xavg, z4.xdiff,
            z4.row_start, z4.row_pow, z4.row_coef, z4.row_diff, z4.max_order, z4.rcut,
            nchunk, serial_counting,
        )
        if self.charge_products is not None:
            energy += self._add_coulomb(types, positions, cell, pbc, forces, virial, eatom)
        volume = abs(float(np.linalg.det(cell))) if pbc.all() else None
        stress = -virial / volume if volume else None
        return EvaluationResult(float(energy), forces, stress, eatom, int(npen), volume)

    def _add_coulomb(self, types, positions, cell, pbc, forces, virial, eatom) -> float:
        """Add the Ewald Coulomb forces, virial (this module's sign: -sum r (x) F) and per-atom energies of
        the fitted charge products; return the Coulomb energy."""
        what = f"{self.params.source}: the Coulomb part of a FITCOUL model (Ewald sum)"
        if not pbc.all():
            raise ValueError(f"{what} needs a fully periodic cell; got pbc {pbc.tolist()}")
        try:
            lengths = orthorhombic_lengths(cell)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
        qq = self.charge_products
        terms = coulomb_pair_terms(positions, lengths, types, self.pair_of, len(qq))
        forces += terms.forces @ qq
        virial -= np.tensordot(qq, terms.virial, 1)
        eatom += terms.atom_energy @ qq
        return float(terms.energy @ qq)


def _nonzero_charge(text: str) -> bool:
    """A fixed atom charge of a parameter file that is a non-zero number (FITCOUL files hold +/- signs)."""
    try:
        return float(text) != 0.0
    except ValueError:
        return False


def _empty_tables(nbody: int, nt: int) -> _ClusterTables:
    npair = nbody * (nbody - 1) // 2
    return _ClusterTables(
        block_of=np.full((nt,) * nbody, -1, dtype=np.int64),
        slot_pair=np.zeros((nt,) * nbody + (npair,), dtype=np.int64),
        rin=np.zeros((1, npair)), rout=np.zeros((1, npair)), lam=np.ones((1, npair)),
        xavg=np.zeros((1, npair)), xdiff=np.ones((1, npair)),
        row_start=np.zeros(2, dtype=np.int64), row_pow=np.zeros((1, npair - 1), dtype=np.uint8),
        row_coef=np.zeros((1, 1)), row_diff=np.zeros(1, dtype=np.uint8), max_order=0, rcut=0.0,
    )


def load_model(path) -> ChimesModel:
    """Read and compile a parameter file."""
    return ChimesModel(read_params(path))


# ====================================================================== numba kernels
@njit(cache=True, inline="always")
def _tree_sum(g0, g1, pows, coefs, diffs, L, T, dT, G, S, P):
    """Sum_m c_m prod_k T[k, p_mk] over the rows of groups g0..g1, and its derivative G[k] w.r.t. slot k.

    The sorted rows form a prefix tree over the levels (pair slots) 0..L-1.  A group is one node of level
    L-2 with its children stored densely (``coefs[g, p]`` for last-level power p), so the last level costs two
    short dot products.  Inner nodes are closed when the next group's divergence level ``diffs[g]`` shows
    their subtree is complete (reverse accumulation: P = prefix products, S = subtree sums).
    """
    for k in range(L):
        G[k] = 0.0
    if g1 <= g0:
        return 0.0
    lm = L - 1
    lg = L - 2
    width = coefs.shape[1]
    total = 0.0
    P[0] = 1.0
    for g in range(g0, g1):
        d = diffs[g]
        if g > g0:
            for k in range(lg - 1, d - 1, -1):
                pk = pows[g - 1, k]
                sk = S[k]
                G[k] += P[k] * dT[k, pk] * sk
                v = T[k, pk] * sk
                if k > 0:
                    S[k - 1] += v
                else:
                    total += v
        for k in range(d, lg):
            S[k] = 0.0
            P[k + 1] = P[k] * T[k, pows[g, k]]
        s_t = 0.0
        s_d = 0.0
        for w in range(width):
            c = coefs[g, w]
            s_t += c * T[lm, w]
            s_d += c * dT[lm, w]
        pk = pows[g, lg]
        G[lm] += P[lg] * T[lg, pk] * s_d
        G[lg] += P[lg] * dT[lg, pk] * s_t
        v = T[lg, pk] * s_t
        if lg > 0:
            S[lg - 1] += v
        else:
            total += v
    for k in range(lg - 1, -1, -1):
        pk = pows[g1 - 1, k]
        sk = S[k]
        G[k] += P[k] * dT[k, pk] * sk
        v = T[k, pk] * sk
        if k > 0:
            S[k - 1] += v
        else:
            total += v
    return total


@njit(cache=True, inline="always")
def _separation(ndr, qa, qb):
    """Vector and distance between two neighbours qa, qb of the same home atom (ext[qb] - ext[qa])."""
    dx = ndr[qb, 0] - ndr[qa, 0]
    dy = ndr[qb, 1] - ndr[qa, 1]
    dz = ndr[qb, 2] - ndr[qa, 2]
    return dx, dy, dz, np.sqrt(dx * dx + dy * dy + dz * dz)


@njit(cache=True, inline="always")
def _add_pair(c, a, b, dedr, r, dx, dy, dz, forces, virial):
    fs = dedr / r
    fx = fs * dx
    fy = fs * dy
    fz = fs * dz
    forces[c, a, 0] += fx
    forces[c, a, 1] += fy
    forces[c, a, 2] += fz
    forces[c, b, 0] -= fx
    forces[c, b, 1] -= fy
    forces[c, b, 2] -= fz
    virial[c, 0, 0] += fx * dx
    virial[c, 0, 1] += fx * dy
    virial[c, 0, 2] += fx * dz
    virial[c, 1, 1] += fy * dy
    virial[c, 1, 2] += fy * dz
    virial[c, 2, 2] += fz * dz


@njit(cache=True)
def _cluster(nb, rr, blk, sp, rin, rout, lam, xavg, xdiff, row_start, row_pow, row_coef,
             row_diff, order, fct, fvar, T, dT, fc, dfc, G, S, P, dedr):
    """Energy of one cluster of nb atoms (runtime pair distances rr) into dedr[pairs]; returns energy or 0."""
    npair = nb * (nb - 1) // 2
    for s in range(npair):
        if rr[sp[s]] >= rout[blk, s]:
            return 0.0, False
    for s in range(npair):
        r = rr[sp[s]]
        chebyshev(r, rin[blk, s], lam[blk, s], xavg[blk, s], xdiff[blk, s], order, T[s], dT[s])
        f, df = cutoff(r, rout[blk, s], fct, fvar)
        fc[s] = f
        dfc[s] = df
    ssum = _tree_sum(row_start[blk], row_start[blk + 1], row_pow, row_coef, row_diff, npair, T, dT, G, S, P)
    ftot = 1.0
    for s in range(npair):
        ftot *= fc[s]
    for s in range(npair):
        other = 1.0
        for q in range(npair):
            if q != s:
                other *= fc[q]
        dedr[sp[s]] = ftot * G[s] + ssum * dfc[s] * other
    return ftot * ssum, True


@njit(cache=True, parallel=True)
def _evaluate_kernel(types, parent, start, nj, nr, ndr, s3, i3, s4, i4,
                     pair_of, p_rin, p_rout, p_lam, p_xavg, p_xdiff, c2, order2, pen_d, pen_a, fct, fvar, offsets,
                     b3, sp3, rin3, rout3, lam3, xavg3, xdiff3, rs3, rp3, rc3_, rd3, o3, rc3,
                     b4, sp4, rin4, rout4, lam4, xavg4, xdiff4, rs4, rp4, rc4_, rd4, o4, rc4,
                     nchunk, serial_counting):
    n = types.shape[0]
    forces = np.zeros((nchunk, n, 3))
    virial = np.zeros((nchunk, 3, 3))
    energy = np.zeros(nchunk)
    eatom = np.zeros((nchunk, n))
    npen = np.zeros(nchunk, dtype=np.int64)
    maxo = max(order2, o3, o4) + 1
    for c in prange(nchunk):
        T = np.empty((6, maxo))
        dT = np.empty((6, maxo))
        fc = np.empty(6)
        dfc = np.empty(6)
        G = np.empty(6)
        S = np.empty(6)
        P = np.empty(7)
        rr = np.empty(6)
        dedr = np.empty(6)
        # atoms are dealt round-robin: low indices own more clusters (half lists), so contiguous
        # blocks would leave one thread with most of the work
        for i in range(c, n, nchunk):
            ti = types[i]
            energy[c] += offsets[ti]
            eatom[c, i] += offsets[ti]
            # ---------------- 2-body
            for q in range(start[i], start[i + 1]):
                j = parent[nj[q]]
                pt = pair_of[ti, types[j]]
                r = nr[q]
                if r >= p_rout[pt]:
                    continue
                w = 0.5 if (j == i and not serial_counting) else 1.0
                e = 0.0
                de = 0.0
                if p_rout[pt] > p_rin[pt]:
                    chebyshev(r, p_rin[pt], p_lam[pt], p_xavg[pt], p_xdiff[pt], order2, T[0], dT[0])
                    f, df = cutoff(r, p_rout[pt], fct, fvar)
                    sv = 0.0
                    sd = 0.0
                    for k in range(1, order2 + 1):
                        sv += c2[pt, k] * T[0, k]
                        sd += c2[pt, k] * dT[0, k]
                    e = f * sv
                    de = f * sd + df * sv
                ep, dep = penalty(r, p_rin[pt], pen_d, pen_a)
                if ep > 0.0:
                    npen[c] += 1
                    e += ep
                    de += dep
                e *= w
                energy[c] += e
                eatom[c, i] += 0.5 * e
                eatom[c, j] += 0.5 * e
                _add_pair(c, i, j, w * de, r, ndr[q, 0], ndr[q, 1], ndr[q, 2], forces, virial)
            # ---------------- 3-body
            if rc3 > 0.0:
                for a in range(s3[i], s3[i + 1]):
                    qa = i3[a]
                    ja = nj[qa]
                    j = parent[ja]
                    tj = types[j]
                    for b in range(a + 1, s3[i + 1]):
                        qb = i3[b]
                        kb = nj[qb]
                        dx, dy, dz, rjk = _separation(ndr, qa, qb)
                        if rjk >= rc3:
                            continue
                        k = parent[kb]
                        tk = types[k]
                        blk = b3[ti, tj, tk]
                        if blk < 0:
                            continue
                        rr[0] = nr[qa]
                        rr[1] = nr[qb]
                        rr[2] = rjk
                        e, ok = _cluster(3, rr, blk, sp3[ti, tj, tk], rin3, rout3, lam3, xavg3,
                                         xdiff3, rs3, rp3, rc3_, rd3, o3, fct, fvar, T, dT, fc, dfc, G, S, P, dedr)
                        if not ok:
                            continue
                        if serial_counting:
                            w = 2.0 if j == k else 1.0
                        else:
                            m = 1
                            if j == i:
                                m += 1
                            if k == i:
                                m += 1
                            w = 1.0 / m
                        e *= w
                        energy[c] += e
                        e3 = e / 3.0
                        eatom[c, i] += e3
                        eatom[c, j] += e3
                        eatom[c, k] += e3
                        _add_pair(c, i, j, w * dedr[0], rr[0], ndr[qa, 0], ndr[qa, 1], ndr[qa, 2], forces, virial)
                        _add_pair(c, i, k, w * dedr[1], rr[1], ndr[qb, 0], ndr[qb, 1], ndr[qb, 2], forces, virial)
                        _add_pair(c, j, k, w * dedr[2], rjk, dx, dy, dz, forces, virial)
            # ---------------- 4-body
            if rc4 > 0.0:
                s4a = s4[i]
                s4b = s4[i + 1]
                for a in range(s4a, s4b):
                    qa = i4[a]
                    j = parent[nj[qa]]
                    tj = types[j]
                    for b in range(a + 1, s4b):
                        qb = i4[b]
                        djk0, djk1, djk2, rjk = _separation(ndr, qa, qb)
                        if rjk >= rc4:
                            continue
                        k = parent[nj[qb]]
                        tk = types[k]
                        for cc in range(b + 1, s4b):
                            qc = i4[cc]
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
                            e, ok = _cluster(4, rr, blk, sp4[ti, tj, tk, tl], rin4, rout4, lam4,
                                             xavg4, xdiff4, rs4, rp4, rc4_, rd4, o4, fct, fvar, T, dT, fc, dfc,
                                             G, S, P, dedr)
                            if not ok:
                                continue
                            if serial_counting:
                                w = 1.0
                                if j == k and k == l:
                                    w = 6.0
                                elif j == k or j == l or k == l:
                                    w = 2.0
                            else:
                                m = 1
                                if j == i:
                                    m += 1
                                if k == i:
                                    m += 1
                                if l == i:
                                    m += 1
                                w = 1.0 / m
                            e *= w
                            energy[c] += e
                            e4 = 0.25 * e
                            eatom[c, i] += e4
                            eatom[c, j] += e4
                            eatom[c, k] += e4
                            eatom[c, l] += e4
                            _add_pair(c, i, j, w * dedr[0], rr[0], ndr[qa, 0], ndr[qa, 1], ndr[qa, 2], forces,
                                      virial)
                            _add_pair(c, i, k, w * dedr[1], rr[1], ndr[qb, 0], ndr[qb, 1], ndr[qb, 2], forces,
                                      virial)
                            _add_pair(c, i, l, w * dedr[2], rr[2], ndr[qc, 0], ndr[qc, 1], ndr[qc, 2], forces,
                                      virial)
                            _add_pair(c, j, k, w * dedr[3], rjk, djk0, djk1, djk2, forces, virial)
                            _add_pair(c, j, l, w * dedr[4], rjl, djl0, djl1, djl2, forces, virial)
                            _add_pair(c, k, l, w * dedr[5], rkl, dkl0, dkl1, dkl2, forces, virial)
    # fixed-order reduction: identical results for any thread count
    f_tot = np.zeros((n, 3))
    v_tot = np.zeros((3, 3))
    ea_tot = np.zeros(n)
    e_tot = 0.0
    np_tot = 0
    for c in range(nchunk):
        e_tot += energy[c]
        np_tot += npen[c]
        for i in range(n):
            ea_tot[i] += eatom[c, i]
            for d in range(3):
                f_tot[i, d] += forces[c, i, d]
        for a in range(3):
            for b in range(a, 3):
                v_tot[a, b] += virial[c, a, b]
    for a in range(3):
        for b in range(a):
            v_tot[a, b] = v_tot[b, a]
    return e_tot, f_tot, v_tot, ea_tot, np_tot


def set_num_threads(n: int) -> None:
    """Threads used by the kernels (results do not depend on it)."""
    numba.set_num_threads(int(n))
