"""The fitted basis of a ChIMES fit: which coefficients exist and in which column each one lands.

From a :class:`~aiida_chimes.chimes.fit_setup.FitSetup` this builds the "skeleton" parameter model that
chimes_lsq writes as ``params.header`` + ``ff_groups.map``: pair types in canonical order, every 3- and 4-body
cluster type (atoms sorted alphabetically, proper pair names), the allowed power tuples of each cluster with
their permutation-equivalence groups (equiv index, param index) in chimes_lsq's enumeration order, the cluster
maps, the SPECIAL many-body cutoffs resolved per cluster, and the hierarchical exclusions.  All coefficient
values are zero; the solver fills them in.

Enumeration rules (chimes_lsq ``Cluster.C``): power tuples run over nested loops (first pair slowest), a tuple
is allowed when every atom of the cluster sits in at least one pair with a non-zero power, and the first tuple
of a permutation group found defines the group; its images under permutations of like atoms (like-atom groups
permuted in lexicographic order, first group slowest) follow it in the listing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .io.lsq_files import excluded_pairs, excluded_types, fits_charges
from .params import AtomType, ChimesParams, ClusterBlock, PairType, SpecialCutoffs

_SLOTS = {3: ((0, 1), (0, 2), (1, 2)), 4: ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))}


def cluster_rows(atoms: tuple, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(powers, equiv_index, param_index) of a cluster whose sorted atom names are ``atoms``.

    ``atoms`` may hold any comparable labels; equal labels are like atoms that may be permuted.
    """
    natoms = len(atoms)
    slots = _SLOTS[natoms]
    npair = len(slots)
    # like-atom groups: contiguous runs of equal names (atoms are sorted)
    groups = []
    s = 0
    while s < natoms:
        e = s + 1
        while e < natoms and atoms[e] == atoms[s]:
            e += 1
        groups.append((s, e))
        s = e
    group_perms = [list(itertools.permutations(range(a, b))) for a, b in groups]
    perms = []
    for combo in itertools.product(*group_perms):  # first group slowest, each in lexicographic order
        perm = []
        for part in combo:
            perm.extend(part)
        perms.append(tuple(perm))
    slot_of = {}
    for k, (u, v) in enumerate(slots):
        slot_of[(u, v)] = slot_of[(v, u)] = k
    # permuted tuple: new slot (i, j) takes the power of slot (perm[i], perm[j])
    perm_maps = [np.array([slot_of[(p[u], p[v])] for u, v in slots]) for p in perms]

    seen: dict[tuple, int] = {}
    powers, equiv, param = [], [], []
    n_unique = 0
    for tup in itertools.product(range(order), repeat=npair):
        if tup in seen:
            continue
        present = set()
        for k, (u, v) in enumerate(slots):
            if tup[k] > 0:
                present.add(u)
                present.add(v)
        if len(present) < natoms:
            continue
        first = len(powers)
        arr = np.array(tup)
        for pm in perm_maps:
            image = tuple(int(x) for x in arr[pm])
            if image in seen:
                continue
            seen[image] = len(powers)
            powers.append(image)
            equiv.append(first)
            param.append(n_unique)
        n_unique += 1
    if not powers:
        return np.zeros((0, npair), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.array(powers, dtype=np.int64), np.array(equiv, dtype=np.int64), np.array(param, dtype=np.int64)


@dataclass
class ColumnLayout:
    """Where each coefficient sits in a design-matrix row (chimes_lsq column order)."""

    pair_offset: np.ndarray  # (npairs,) first column of each pair block, -1 if excluded
    order2: int
    triplet_offset: np.ndarray  # (ntriplets,) first column, -1 if excluded / absent
    quad_offset: np.ndarray
    energy_offset: np.ndarray  # (ntypes,) column of each type's energy offset, -1 if excluded or not fitted
    ncols: int
    labels: list[str]
    charge_offset: int = -1  # FITCOUL: first of the charge-product columns (one per pair type), else -1


def _proper_names(types: list[str], pairs: list[PairType]) -> dict[tuple[str, str], str]:
    names = {}
    for p in pairs:
        names[(p.atom1, p.atom2)] = names[(p.atom2, p.atom1)] = p.name
    for a in types:
        for b in types:
            if (a, b) not in names:
                raise ValueError(f"no pair type for {a}-{b}")
    return names


def build_basis(setup) -> ChimesParams:
    """The params.header skeleton of a fit setup (all coefficients zero)."""
    types = list(setup.types)
    atom_types = [AtomType(s, _charge_text(c, setup.fit_coulomb), float(m))
                  for s, c, m in zip(types, setup.charges, setup.masses, strict=True)]
    pairs = [PairType(p.atom1, p.atom2, float(p.s_minim), float(p.s_maxim), float(p.morse_lambda))
             for p in setup.pairs]
    names = _proper_names(types, pairs)
    o2, o3, o4 = setup.orders
    excl = {k: [tuple(sorted(x)) for x in v] for k, v in (setup.exclude or {}).items()}
    hier = bool(setup.hierarchical)
    flags = {
        "USECOUL": "true" if setup.fit_coulomb else "false",
        "FITCOUL": "true" if setup.fit_coulomb else "false",
        "USE3BCH": "true" if o3 > 0 else "false",
        "USE4BCH": "true" if o4 > 0 else "false",
    }
    ex1 = [i for i, t in enumerate(types) if hier and (t,) in excl.get(1, [])]
    ex2 = [k for k, p in enumerate(pairs) if hier and tuple(sorted((p.atom1, p.atom2))) in excl.get(2, [])]
    flags["EXCLD1B"] = " ".join(str(i) for i in ex1) if ex1 else "false"
    flags["EXCLD2B"] = " ".join(str(k) for k in ex2) if ex2 else "false"

    p = ChimesParams(
        orders=(o2, o3, o4), types=atom_types, pairs=pairs,
        pair_powers=[np.arange(o2, dtype=np.int64) for _ in pairs],
        pair_coeffs=[np.zeros(o2) for _ in pairs],
        flags=flags, cheby_range=tuple(setup.cheby_range),
        fcut_type=setup.fcut_type, fcut_var=setup.fcut_var,
        pair_charges=[None for _ in pairs],
        source=getattr(setup, "source", "<fit setup>"),
    )
    p.pairmaps = sorted(((k, a + b) for a in types for b in types for k in [_pair_of(pairs, a, b)]),
                        key=lambda t: t[1])
    for nbody, order in ((3, o3), (4, o4)):
        if order <= 0:
            continue
        blocks, maps, first_key = _cluster_types(types, names, nbody, order, excl.get(nbody, []))
        _apply_special(setup, p, nbody, blocks, maps, first_key, names)
        if nbody == 3:
            p.triplets, p.tripmaps, p.n_triplets = blocks, maps, len(blocks)
        else:
            p.quadruplets, p.quadmaps, p.n_quadruplets = blocks, maps, len(blocks)
    if o4 <= 0:
        p.n_quadruplets = 0
    return p


def _charge_text(charge, fit_coulomb: bool) -> str:
    """chimes_lsq prints fixed charges as numbers (``%g``: 0.0 -> 0, -0.0 -> -0) and FITCOUL signs as given."""
    try:
        return f"{float(charge):g}"
    except ValueError:
        if fit_coulomb:
            return str(charge)
        raise


def _pair_of(pairs, a, b) -> int:
    for k, q in enumerate(pairs):
        if (q.atom1, q.atom2) in ((a, b), (b, a)):
            return k
    raise ValueError(f"no pair type for {a}-{b}")


def _cluster_types(types, names, nbody, order, excluded):
    """Cluster types in chimes_lsq order, their maps (sorted by key) and the first key of each type."""
    slots = _SLOTS[nbody]
    blocks: list[ClusterBlock] = []
    by_pairs: dict[tuple, int] = {}
    maps: dict[str, int] = {}
    first_key: dict[int, str] = {}
    for idx in itertools.product(range(len(types)), repeat=nbody):
        atoms = tuple(sorted(types[t] for t in idx))
        pnames = tuple(names[(atoms[u], atoms[v])] for u, v in slots)
        key = "".join(names[(types[idx[u]], types[idx[v]])] for u, v in slots)
        is_excl = atoms in excluded
        if pnames not in by_pairs:
            b = len(blocks)
            by_pairs[pnames] = b
            if is_excl:
                z = np.zeros((0, len(slots)), dtype=np.int64)
                blocks.append(ClusterBlock(b, atoms, pnames, True, 0, z, np.zeros(0, np.int64),
                                           np.zeros(0, np.int64), np.zeros(0)))
            else:
                pw, eq, pa = cluster_rows(atoms, order)
                blocks.append(ClusterBlock(b, atoms, pnames, False, int(pa.max()) + 1 if len(pa) else 0,
                                           pw, eq, pa, np.zeros(len(pw))))
        b = by_pairs[pnames]
        label = -1 if is_excl else b
        if key not in maps:
            maps[key] = label
        first_key.setdefault(label, key)
    return blocks, sorted(((v, k) for k, v in maps.items()), key=lambda t: t[1]), first_key


def _apply_special(setup, p, nbody, blocks, maps, first_key, names) -> None:
    """Resolve SPECIAL S_MINIM/S_MAXIM settings into per-cluster SPECIFIC lists as chimes_lsq writes them."""
    body = f"{nbody}B"
    keymap = {k: v for v, k in maps}
    for kind in ("S_MINIM", "S_MAXIM"):
        spec = (setup.special or {}).get((body, kind))
        if spec is None:
            continue
        values: dict[int, list[float]] = {}
        default = {"S_MINIM": lambda nm: p.pairs[_name_index(p, nm)].s_minim,
                   "S_MAXIM": lambda nm: p.pairs[_name_index(p, nm)].s_maxim}[kind]
        if spec.mode == "ALL":
            for b in range(len(blocks)):
                values[b] = [float(spec.value)] * len(blocks[b].pairs)
        else:
            for key, pnames, cuts in spec.entries:
                if key not in keymap:
                    raise ValueError(f"{setup.source}: SPECIAL {body} {kind}: no {nbody}-body cluster has the key "
                                     f"{key!r} (known keys: {' '.join(sorted(keymap))})")
                b = keymap[key]
                if b < 0:
                    continue  # an excluded cluster has no columns: its cutoffs do not matter
                cur = values.setdefault(b, [default(nm) for nm in blocks[b].pairs])
                for nm, c in zip(pnames, cuts, strict=True):
                    a, bb = _split_name(nm, p)
                    proper = names[(a, bb)]
                    for s, bn in enumerate(blocks[b].pairs):
                        if bn == proper:
                            cur[s] = float(c)
        entries = [(first_key[b], blocks[b].pairs, tuple(values[b])) for b in sorted(values)
                   if not blocks[b].excluded]
        if entries:
            p.special[(body, kind)] = SpecialCutoffs("SPECIFIC", None, entries)


def _name_index(p: ChimesParams, name: str) -> int:
    for k, q in enumerate(p.pairs):
        if name in (q.atom1 + q.atom2, q.atom2 + q.atom1):
            return k
    raise KeyError(name)


def _split_name(name: str, p: ChimesParams) -> tuple[str, str]:
    for q in p.pairs:
        if name == q.atom1 + q.atom2:
            return q.atom1, q.atom2
        if name == q.atom2 + q.atom1:
            return q.atom2, q.atom1
    raise ValueError(f"{p.source}: unknown pair name {name!r}")


def column_layout(p: ChimesParams, fit_energy: bool) -> ColumnLayout:
    """chimes_lsq column order: pair blocks, unique 3-body, unique 4-body, charge products (FITCOUL), energy
    offsets (if fitted)."""
    o2 = p.orders[0]
    labels: list[str] = []
    col = 0
    ex2 = set(excluded_pairs(p))
    pair_off = np.full(len(p.pairs), -1, dtype=np.int64)
    for k, q in enumerate(p.pairs):
        if k in ex2:
            continue
        pair_off[k] = col
        labels += [f"2B {q.name} T{n + 1}" for n in range(o2)]
        col += o2
    offs = []
    for nbody, blocks in ((3, p.triplets), (4, p.quadruplets)):
        off = np.full(max(len(blocks), 1), -1, dtype=np.int64)
        for b, blk in enumerate(blocks):
            if blk.excluded or blk.unique == 0:
                continue
            off[b] = col
            labels += [f"{nbody}B {''.join(blk.atoms)} #{u}" for u in range(blk.unique)]
            col += blk.unique
        offs.append(off)
    charge_off = -1
    if fits_charges(p):
        charge_off = col
        labels += [f"Q {q.name}" for q in p.pairs]
        col += len(p.pairs)
    e_off = np.full(len(p.types), -1, dtype=np.int64)
    if fit_energy:
        ex1 = set(excluded_types(p))
        for t, at in enumerate(p.types):
            if t in ex1:
                continue
            e_off[t] = col
            labels.append(f"E0 {at.symbol}")
            col += 1
    return ColumnLayout(pair_off, o2, offs[0], offs[1], e_off, col, labels, charge_off)
