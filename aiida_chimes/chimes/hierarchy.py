"""Hierarchical ("tile") fitting: tiles, exclusions, consistency checks, residual data and merging.

A tile is a set of elements; it holds the interactions whose element set is exactly that set: tile {C} holds
C (energy offset), CC, CCC, CCCC; tile {C, N} holds only the cross terms CN, CCN, CNN, CCCN, CCNN, CNNN.  Row k
of the hierarchy holds the tiles of k elements.  A fit of a higher tile runs on residual data (reference labels
minus the contributions of the given, lower tiles, each evaluated on its own elements only) with the
interactions of the lower tiles excluded; the new fit and the lower tiles are then merged into one parameter
file whose model is exactly the sum of the parts.  This follows the ChIMES active-learning driver (al_driver
``gen_ff.subtract`` and ``hierarch.py``; see ``shared/notes/chimes.md`` section 5.1) with three deliberate
differences, all documented where they apply: inconsistent inputs are refused instead of patched, SPECIAL
S_MINIM cutoffs are carried over (al_driver drops them), and many-body cutoffs given as ``ALL`` are written as
SPECIFIC entries so that the merged file keeps every part's cutoffs.

Rules enforced (by :func:`check_consistency` for a fit, by :func:`merge_tiles` for a merge):

* type order: every lower tile's atom types appear in the fit's type order (a subsequence), so that proper
  pair names (``CN``, not ``NC``), map keys and SPECIAL keys mean the same in every file;
* the lower potentials hold disjoint tiles (a tile given twice would be subtracted twice);
* shared pair types have equal S_MINIM, S_MAXIM and MORSE_LAMBDA; the cutoff function (FCUT type and its
  parameter) is the same;
* polynomial orders of the new fit are not lower than those of the lower tiles (for each body order they use);
* a hierarchical fit excludes exactly the lower tiles' interactions (EXCLUDE 1B-4B, HIERARC true);
* many-body cutoffs are SPECIFIC in a hierarchical fit, agree with the lower tiles for the lower tiles'
  clusters, and the lower tiles' many-body outer cutoffs do not exceed their pair cutoffs.

No AiiDA imports; the evaluator (numba) is imported on first use.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import re
from collections.abc import Iterable

import numpy as np

from .params import BODY_KEYS, SPECIAL_KINDS, ChimesParams, ClusterBlock, SpecialCutoffs
from .units import EV_PER_KCALMOL

__all__ = [
    "HierarchyError",
    "tile_of",
    "tile_name",
    "tile_from_name",
    "tile_rows",
    "tiles_for",
    "held_tiles",
    "interactions_of",
    "exclusions_for",
    "settings_for_tile",
    "check_consistency",
    "check_given_tiles",
    "tile_contribution",
    "residual_frames",
    "merge_tiles",
]

_SLOTS = {3: ((0, 1), (0, 2), (1, 2)), 4: ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))}
_BODY = {"3B": 3, "4B": 4}
_EXCLUDE_FLAGS = ("EXCLD1B", "EXCLD2B", "EXCL1B", "EXCL2B")
_TOL = 1e-12


class HierarchyError(ValueError):
    """Inconsistent hierarchical-fitting input: the message names the tile, the setting and the fix."""


# ===================================================================== tiles
def tile_of(cluster_elements: Iterable[str]) -> frozenset[str]:
    """The tile of an interaction: the set of its elements (``("C", "C", "N")`` -> {C, N})."""
    tile = frozenset(cluster_elements)
    if not tile:
        raise HierarchyError("a tile needs at least one element")
    return tile


def tile_name(tile: Iterable[str]) -> str:
    """Name of a tile, its elements in alphabetical order: ``"C"``, ``"CN"``, ``"CNO"``."""
    return "".join(sorted(tile_of(tile)))


def tile_from_name(name: str) -> frozenset[str]:
    """The tile of a tile name (``"CN"`` -> {C, N}, ``"CCl"`` -> {C, Cl}); HierarchyError if it is not one."""
    symbols = re.findall(r"[A-Z][a-z]?", name)
    if not symbols or "".join(symbols) != name:
        raise HierarchyError(f"tile {name!r}: not a tile name (element symbols such as 'CN' or 'CCl')")
    return tile_of(symbols)


def _unique(elements: Iterable[str]) -> list[str]:
    """Elements in first-seen order, without repeats (a bare string is one element)."""
    if isinstance(elements, str):
        elements = [elements]
    return list(dict.fromkeys(elements))


def tile_rows(elements: Iterable[str], max_body: int = 4) -> list[list[frozenset[str]]]:
    """Rows of the hierarchy: row k-1 lists the tiles of k elements, in the order of ``elements``.

    A tile of k elements has interactions only if k <= ``max_body`` (the highest body order used).
    """
    elements = _unique(elements)
    top = min(len(elements), max_body)
    return [[frozenset(c) for c in itertools.combinations(elements, k)] for k in range(1, top + 1)]


def tiles_for(elements: Iterable[str], max_body: int = 4) -> list[frozenset[str]]:
    """All tiles of ``elements``, row by row (single elements first)."""
    return [t for row in tile_rows(elements, max_body) for t in row]


def interactions_of(tile: Iterable[str], body: int) -> list[tuple[str, ...]]:
    """The ``body``-body interactions of a tile as sorted element tuples (tile {C, N}, 3 -> CCN, CNN)."""
    tile = tile_of(tile)
    combos = itertools.combinations_with_replacement(sorted(tile), body)
    return [c for c in combos if set(c) == tile]


def _as_tiles(tiles) -> list[frozenset[str]]:
    """Normalise tiles given as strings (one element) or iterables of symbols; keep order, drop repeats."""
    out = [frozenset([t]) if isinstance(t, str) else tile_of(t) for t in tiles]
    return list(dict.fromkeys(out))


def _bodies(orders) -> list[int]:
    """Body orders a fit uses: 1 and 2 always, 3 and 4 when their PAIRTYP order is > 0 (all if None)."""
    if orders is None:
        return [1, 2, 3, 4]
    orders = tuple(orders) + (0, 0, 0)
    return [1, 2] + [b for b, o in ((3, orders[1]), (4, orders[2])) if o > 0]


def exclusions_for(types: Iterable[str], given_tiles, orders=None) -> dict[int, list[tuple[str, ...]]]:
    """EXCLUDE 1B-4B entries (FitSetup.exclude format) removing exactly the interactions of ``given_tiles``.

    Full mode gives every single-element tile, partial mode some of them (or any lower tiles).  Entries are
    ordered by tile (row by row, in type order) within each body order, as al_driver's example writes them.
    """
    types = _unique(types)
    given = _as_tiles(given_tiles)
    for t in given:
        if not t <= set(types):
            raise HierarchyError(f"tile {tile_name(t)}: elements {sorted(t - set(types))} are not atom types of "
                                 f"the fit ({' '.join(types)}); add them to the fit's types or drop the tile")
    order = {t: i for i, t in enumerate(tiles_for(types))}
    given.sort(key=lambda t: order.get(t, len(order)))
    out: dict[int, list[tuple[str, ...]]] = {}
    for body in _bodies(orders):
        entries = [e for t in given for e in interactions_of(t, body)]
        if entries:
            out[body] = entries
    return out


# ===================================================================== reading parameter sets
def _label(params: ChimesParams) -> str:
    """'tile C (C.params.txt.reduced)': how errors name a lower potential."""
    names = "+".join(tile_name(t) for t in held_tiles(params)) or "(empty)"
    return f"tile {names} ({os.path.basename(str(params.source))})"


def held_tiles(params: ChimesParams) -> list[frozenset[str]]:
    """Tiles whose interactions a parameter set holds: a non-zero energy offset, pair or cluster coefficient."""
    held = set()
    if params.energy_offsets is not None:
        held |= {frozenset([s]) for s, e in zip(params.symbols, params.energy_offsets, strict=True) if e != 0.0}
    for q, c in zip(params.pairs, params.pair_coeffs, strict=True):
        if np.any(np.asarray(c) != 0.0):
            held.add(frozenset((q.atom1, q.atom2)))
    for blk in (*params.triplets, *params.quadruplets):
        if not blk.excluded and np.any(blk.values != 0.0):
            held.add(frozenset(blk.atoms))
    return [t for t in tiles_for(params.symbols) if t in held]


def _pair_names(types: list[str]) -> dict[tuple[str, str], str]:
    """Proper pair name (earlier type first, as chimes_lsq writes it) of each sorted element pair."""
    return {tuple(sorted((a, b))): a + b for i, a in enumerate(types) for b in types[i:]}


def _block_pairs(atoms: tuple[str, ...], names: dict) -> tuple[str, ...]:
    """Pair names of a cluster's slots (ij, ik, jk / ij .. kl) for its alphabetically sorted atoms."""
    return tuple(names[tuple(sorted((atoms[u], atoms[v])))] for u, v in _SLOTS[len(atoms)])


def _key_atoms(types: list[str], names: dict, nbody: int) -> dict[str, tuple[str, ...]]:
    """Every TRIPMAPS/QUADMAPS key of the types -> the sorted atoms of its cluster."""
    out = {}
    for tt in itertools.product(types, repeat=nbody):
        key = "".join(names[tuple(sorted((tt[u], tt[v])))] for u, v in _SLOTS[nbody])
        out[key] = tuple(sorted(tt))
    return out


def _clusters(types: list[str], nbody: int) -> list[tuple[str, ...]]:
    """All cluster types (sorted atoms) of ``nbody`` atoms over ``types``, in chimes_lsq block order."""
    return [tuple(sorted(c)) for c in itertools.combinations_with_replacement(types, nbody)]


def _special_values(types, names, pair_cut, special, body, kind, clusters) -> dict[tuple, tuple]:
    """Effective per-slot many-body cutoffs of ``clusters`` as chimesFF assigns them (defaults, ALL, SPECIFIC)."""
    nbody = _BODY[body]
    col = 0 if kind == "S_MINIM" else 1
    out = {a: [pair_cut[tuple(sorted((a[u], a[v])))][col] for u, v in _SLOTS[nbody]] for a in clusters}
    spec = special.get((body, kind))
    if spec is not None and spec.mode == "ALL":
        out = {a: [spec.value] * len(v) for a, v in out.items()}
    elif spec is not None:
        if nbody == 4 and kind == "S_MINIM":
            out = {a: [-1.0] * len(v) for a, v in out.items()}  # chimesFF: quads not listed get -1
        keys = _key_atoms(types, names, nbody)
        for key, pnames, vals in spec.entries:
            atoms = keys.get(key)
            if atoms in out:
                slots = list(_block_pairs(atoms, names))
                for nm, v in zip(pnames, vals, strict=True):
                    if nm not in slots:
                        raise HierarchyError(f"SPECIAL {body} {kind} entry {key}: pair {nm} is not a free pair of "
                                             f"cluster {' '.join(atoms)}; list each pair of the cluster once")
                    k = slots.index(nm)
                    slots[k] = None
                    out[atoms][k] = v
    return {a: tuple(v) for a, v in out.items()}


def _params_view(p: ChimesParams) -> dict:
    """What the rules need of a parameter set: types, pair names and cutoffs, orders, fcut, specials."""
    return {"types": p.symbols, "names": {tuple(sorted((q.atom1, q.atom2))): q.name for q in p.pairs},
            "pairs": {tuple(sorted((q.atom1, q.atom2))): (q.s_minim, q.s_maxim, q.morse_lambda) for q in p.pairs},
            "orders": tuple(p.orders), "fcut": (p.fcut_type, p.fcut_var), "special": p.special}


# ===================================================================== settings dicts
def _settings_types(settings) -> list[str]:
    """Atom-type symbols of a settings dict (types may be symbols or [symbol, charge, mass])."""
    return [t if isinstance(t, str) else t[0] for t in settings["types"]]


def _settings_pairs(settings) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(S_MINIM, S_MAXIM, MORSE_LAMBDA) per sorted element pair of a settings dict."""
    out = {}
    for key, v in settings.get("pairs", {}).items():
        a, b = key if isinstance(key, tuple) else key.replace("-", " ").split()
        v = v if isinstance(v, dict) else vars(v)
        out[tuple(sorted((a, b)))] = (float(v["s_minim"]), float(v["s_maxim"]), float(v["morse_lambda"]))
    return out


def _settings_special(settings) -> dict[tuple[str, str], SpecialCutoffs]:
    """SPECIAL settings of a settings dict as SpecialCutoffs keyed (body, kind)."""
    out = {}
    for key, v in (settings.get("special") or {}).items():
        key = tuple(key) if isinstance(key, (tuple, list)) else tuple(key.split())
        if isinstance(v, SpecialCutoffs):
            out[key] = v
        elif isinstance(v, (int, float)):
            out[key] = SpecialCutoffs("ALL", float(v))
        else:
            out[key] = SpecialCutoffs("SPECIFIC", entries=[(k, tuple(n), tuple(float(x) for x in c)) for k, n, c in v])
    return out


def _settings_exclude(settings) -> dict[int, set[tuple[str, ...]]]:
    """EXCLUDE entries of a settings dict as sets of sorted element tuples per body order."""
    out = {}
    for body, entries in (settings.get("exclude") or {}).items():
        norm = {tuple(sorted(e.split() if isinstance(e, str) else e)) for e in entries}
        if norm:
            out[int(body)] = norm
    return out


def _as_settings(settings) -> dict:
    """A fit-settings dict from a dict or a FitSetup (e.g. read from fm_setup.in)."""
    if isinstance(settings, dict):
        return settings
    from .fit_settings import settings_from_setup

    return settings_from_setup(settings)


def _settings_view(types: list[str], settings: dict) -> dict:
    """The same view of a settings dict as _params_view gives of a parameter set."""
    orders = tuple(settings["orders"]) + (0,) * (3 - len(tuple(settings["orders"])))
    return {"types": list(types), "names": _pair_names(list(types)), "pairs": _settings_pairs(settings),
            "orders": orders, "fcut": (settings.get("fcut_type", "CUBIC"), settings.get("fcut_var")),
            "special": _settings_special(settings)}


# ===================================================================== consistency rules
def _same(a, b) -> bool:
    """Equal numbers (to round-off) or both None."""
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=_TOL, abs_tol=_TOL)


def _check_type_order(types: list[str], lower: list[ChimesParams], fit: str) -> str:
    """Each lower tile's types are a subsequence of the fit's type order."""
    for p in lower:
        missing = [s for s in p.symbols if s not in types]
        if missing:
            raise HierarchyError(f"{_label(p)}: atom types {missing} are not atom types of {fit} "
                                 f"({' '.join(types)}); add them to the TYPEIDX table of {fit}")
        pos = [types.index(s) for s in p.symbols]
        if pos != sorted(pos):
            raise HierarchyError(f"{_label(p)}: its type order {' '.join(p.symbols)} differs from the type order "
                                 f"{' '.join(types)} of {fit} (TYPEIDX), which changes pair names and map keys; "
                                 f"list the types of {fit} in the tile's order or refit the tile")
    return f"type order {' '.join(types)}: every lower tile's types follow it"


def _check_disjoint(lower: list[ChimesParams]) -> str:
    """No tile is held by two lower potentials (it would be subtracted and merged twice)."""
    owner: dict[frozenset, ChimesParams] = {}
    for p in lower:
        tiles = held_tiles(p)
        if not tiles:
            raise HierarchyError(f"lower potential {os.path.basename(str(p.source))} holds no interactions (every "
                                 "coefficient and energy offset is zero); drop it from the lower tiles")
        for t in tiles:
            if t in owner:
                raise HierarchyError(f"tile {tile_name(t)} is given twice, by {_label(owner[t])} and {_label(p)}; "
                                     "give each tile once (e.g. the cross-tile fit instead of a merged file)")
            owner[t] = p
    return f"lower tiles {', '.join(tile_name(t) for t in owner) or 'none'}: each given once"


def _check_pairs(view: dict, lower: list[ChimesParams], fit: str) -> str:
    """Shared pair types have the same S_MINIM, S_MAXIM and MORSE_LAMBDA."""
    what = ("S_MINIM", "S_MAXIM", "MORSE_LAMBDA")
    count = 0
    for p in lower:
        for key, vals in _params_view(p)["pairs"].items():
            mine = view["pairs"].get(key)
            if mine is None:
                raise HierarchyError(f"{_label(p)}: pair {''.join(key)} has no pair line in {fit}; give it "
                                     f"(S_MINIM {vals[0]}, S_MAXIM {vals[1]}, MORSE_LAMBDA {vals[2]})")
            for name, a, b in zip(what, mine, vals, strict=True):
                if not _same(a, b):
                    raise HierarchyError(f"{_label(p)}: pair {''.join(key)} has {name} {b} in the tile but {a} in "
                                         f"{fit}; set {name} of {''.join(key)} in {fit} to {b} (the tile was fitted "
                                         "with it) or refit the tile")
            count += 1
    return f"pair cutoffs and Morse lambdas: {count} shared pair lines equal"


def _check_fcut(view: dict, lower: list[ChimesParams], fit: str) -> str:
    """Same cutoff function type and parameter everywhere."""
    ftype, fvar = view["fcut"]
    for p in lower:
        if p.fcut_type != ftype or not _same(p.fcut_var, fvar):
            theirs = f"{p.fcut_type} {p.fcut_var if p.fcut_var is not None else ''}".strip()
            mine = f"{ftype} {fvar if fvar is not None else ''}".strip()
            raise HierarchyError(f"{_label(p)}: FCUTTYP {theirs} differs from {mine} in {fit}; use "
                                 f"FCUTTYP {theirs} in {fit} (one cutoff function per merged file)")
    return f"cutoff function {ftype}{'' if fvar is None else ' ' + str(fvar)} everywhere"


def _check_orders(view: dict, lower: list[ChimesParams], fit: str) -> str:
    """New-fit polynomial orders are >= those of each lower tile (for the body orders the tile uses)."""
    for p in lower:
        for k, name in enumerate(("O2B", "O3B", "O4B")):
            if p.orders[k] > view["orders"][k]:
                raise HierarchyError(f"{_label(p)}: PAIRTYP {name} {p.orders[k]} is higher than {name} "
                                     f"{view['orders'][k]} of {fit}; raise {name} of {fit} to at least "
                                     f"{p.orders[k]} (the merged file has one set of orders)")
    return f"orders {' '.join(map(str, view['orders']))} >= every lower tile's"


def _owner_map(lower: list[ChimesParams]) -> dict[frozenset, ChimesParams]:
    """Tile -> the lower potential that holds it."""
    return {t: p for p in lower for t in held_tiles(p)}


def _check_exclusions(view: dict, settings: dict, lower: list[ChimesParams], fit: str) -> str:
    """HIERARC true and EXCLUDE 1B-4B list exactly the lower tiles' interactions."""
    owners = _owner_map(lower)
    if owners and not settings.get("hierarchical", False):
        raise HierarchyError(f"{fit}: lower tiles {', '.join(tile_name(t) for t in owners)} are given but HIERARC "
                             "is false, so chimes_lsq ignores EXCLUDE 1B/2B; set hierarchical (HIERARC) true")
    want = {b: set(e) for b, e in exclusions_for(view["types"], list(owners), view["orders"]).items()}
    have = _settings_exclude(settings)
    for body in sorted(set(want) | set(have)):
        for entry in sorted(want.get(body, set()) - have.get(body, set())):
            raise HierarchyError(f"{_label(owners[frozenset(entry)])}: its interaction {' '.join(entry)} is not "
                                 f"excluded in {fit}; add '{' '.join(entry)}' to EXCLUDE {body}B INTERACTION "
                                 "(exclusions_for gives the full list)")
        for entry in sorted(have.get(body, set()) - want.get(body, set())):
            raise HierarchyError(f"tile {tile_name(entry)}: EXCLUDE {body}B INTERACTION of {fit} lists "
                                 f"{' '.join(entry)}, but no given lower tile holds it, so the merged model would "
                                 "lack it; remove the entry or give the tile's parameter file")
    n = sum(len(v) for v in want.values())
    return f"exclusions: exactly the {n} interactions of the lower tiles (HIERARC true)" if owners else \
        "exclusions: none (no lower tiles)"


def _check_special(view: dict, lower: list[ChimesParams], fit: str, hierarchical: bool) -> str:
    """SPECIFIC (not ALL) many-body cutoffs in a hierarchical fit, equal to the lower tiles' for their clusters."""
    owners = _owner_map(lower)
    for (body, kind), spec in sorted(view["special"].items()):
        if spec.mode == "ALL" and hierarchical:
            tiles = ", ".join(tile_name(t) for t in owners) or "none"
            raise HierarchyError(f"{fit}: SPECIAL {body} {kind}: ALL {spec.value} in a hierarchical fit would also "
                                 f"set the cutoffs of the lower tiles' clusters (tiles {tiles}); give 'SPECIFIC N' "
                                 "entries for the non-excluded clusters (settings_for_tile writes them)")
    for p in lower:
        pv = _params_view(p)
        for body, kind in itertools.product(BODY_KEYS, SPECIAL_KINDS):
            nbody = _BODY[body]
            mine = [a for a in _clusters(view["types"], nbody) if owners.get(frozenset(a)) is p]
            if not mine or (body, kind) not in view["special"] or view["orders"][nbody - 2] == 0:
                continue
            listed = _listed_clusters(view, body, kind)
            theirs = _special_values(pv["types"], pv["names"], pv["pairs"], pv["special"], body, kind, mine)
            ours = _special_values(view["types"], view["names"], view["pairs"], view["special"], body, kind, mine)
            for a in mine:
                if a in listed and not all(_same(x, y) for x, y in zip(ours[a], theirs[a], strict=True)):
                    raise HierarchyError(f"{_label(p)}: SPECIAL {body} {kind} of cluster {' '.join(a)} is "
                                         f"{list(theirs[a])} in the tile but {list(ours[a])} in {fit}; remove the "
                                         "entry (the cluster is excluded) or give the tile's values")
    for p in lower:
        _check_tile_manybody(p)
    return "SPECIAL many-body cutoffs: SPECIFIC, consistent with the lower tiles"


def _listed_clusters(view: dict, body: str, kind: str) -> set[tuple[str, ...]]:
    """Clusters that a SPECIFIC setting lists explicitly."""
    spec = view["special"].get((body, kind))
    if spec is None or spec.mode != "SPECIFIC":
        return set()
    keys = _key_atoms(view["types"], view["names"], _BODY[body])
    return {keys[k] for k, _, _ in spec.entries if k in keys}


def _check_tile_manybody(p: ChimesParams) -> None:
    """A lower tile's many-body outer cutoffs do not exceed its pair S_MAXIM (unsupported by ChIMES)."""
    pv = _params_view(p)
    for body, blocks in (("3B", p.triplets), ("4B", p.quadruplets)):
        clusters = [b.atoms for b in blocks if not b.excluded]
        rout = _special_values(pv["types"], pv["names"], pv["pairs"], pv["special"], body, "S_MAXIM", clusters)
        for a, vals in rout.items():
            for (u, v), r in zip(_SLOTS[len(a)], vals, strict=True):
                key = tuple(sorted((a[u], a[v])))
                if r > pv["pairs"][key][1] + _TOL:
                    raise HierarchyError(f"{_label(p)}: SPECIAL {body} S_MAXIM {r} of cluster {' '.join(a)} exceeds "
                                         f"the pair S_MAXIM {pv['pairs'][key][1]} of {''.join(key)}; refit the tile "
                                         "with many-body cutoffs <= the pair cutoffs")


def check_consistency(types, settings, lower_potentials: list[ChimesParams]) -> list[str]:
    """Check a hierarchical fit (settings dict or FitSetup) against its lower tiles; HierarchyError if not.

    Returns one line per rule checked (see the module docstring for the rules).
    """
    settings = _as_settings(settings)
    types = _unique(types)
    fit = "the fit settings"
    if "types" in settings and _settings_types(settings) != types:
        raise HierarchyError(f"{fit}: types {_settings_types(settings)} differ from the fit's types {types}; "
                             "pass the same type order")
    view = _settings_view(types, settings)
    lower = list(lower_potentials)
    return [
        _check_type_order(types, lower, fit),
        _check_disjoint(lower),
        _check_pairs(view, lower, fit),
        _check_fcut(view, lower, fit),
        _check_orders(view, lower, fit),
        _check_exclusions(view, settings, lower, fit),
        _check_special(view, lower, fit, bool(settings.get("hierarchical", False))),
    ]


def check_given_tiles(settings, given: list[ChimesParams]) -> list[str]:
    """Check pre-fitted tiles against the global settings of a campaign before any tile is fitted.

    Type order, disjoint tiles, the cutoff function, and every pair line the settings give must equal the tiles'
    (pairs the settings leave out are taken from the tiles): a tile fitted later with the settings must merge
    with the given ones.  Raises HierarchyError naming the tile and the setting.
    """
    settings = _as_settings(settings)
    types = _settings_types(settings)
    given = list(given)
    pairs = _tile_pairs(settings, types, given)  # complete, with the tiles' values
    by_pair = {tuple(sorted(key.split("-"))): key for key in pairs}
    for key, value in settings.get("pairs", {}).items():
        a, b = key if isinstance(key, tuple) else key.replace("-", " ").split()
        name = by_pair.get(tuple(sorted((a, b))))
        if name is not None:
            pairs[name] = dict(value if isinstance(value, dict) else vars(value))
    view = _settings_view(types, {**settings, "pairs": pairs})
    fit = "the global fit settings"
    return [_check_type_order(types, given, fit), _check_disjoint(given), _check_pairs(view, given, fit),
            _check_fcut(view, given, fit)]


# ===================================================================== fit settings of one tile
def _specific_entries(view: dict, spec: SpecialCutoffs, body: str, clusters: list[tuple]) -> list:
    """SPECIFIC entries ``[key, names, values]`` of a SPECIAL setting for ``clusters`` (ALL is expanded)."""
    nbody = _BODY[body]
    if spec.mode == "ALL":
        out = []
        for a in clusters:
            names = _block_pairs(a, view["names"])
            out.append(["".join(names), list(names), [float(spec.value)] * len(names)])
        return out
    keys = _key_atoms(view["types"], view["names"], nbody)
    return [[k, list(n), [float(x) for x in v]] for k, n, v in spec.entries if keys.get(k) in set(clusters)]


def settings_for_tile(settings, tile: Iterable[str], lower: list[ChimesParams]) -> dict:
    """Fit settings (fit_settings dict) of one tile from the global settings and the lower tile potentials.

    The fit covers the tile's elements (in the global type order) with HIERARC true and the lower tiles'
    interactions excluded; pair cutoffs and lambdas of pairs that a lower tile has come from its parameter
    file; SPECIAL many-body cutoffs become SPECIFIC entries for the non-excluded clusters (al_driver forbids
    ALL in hierarchical fits).  Lower potentials with elements outside the tile are ignored.  The result is
    checked with :func:`check_consistency`.
    """
    settings = dict(_as_settings(settings))
    tile = tile_of(tile)
    all_types = settings["types"]
    symbols = _settings_types(settings)
    if not tile <= set(symbols):
        raise HierarchyError(f"tile {tile_name(tile)}: elements {sorted(tile - set(symbols))} are not in the "
                             f"global types {symbols}; add them to the settings' types")
    lower = [p for p in lower if set(p.symbols) <= tile]
    owners = _owner_map(lower)
    if tile in owners:
        raise HierarchyError(f"tile {tile_name(tile)} is already given by {_label(owners[tile])}; fit another "
                             "tile or drop that parameter file")
    types = [s for s in symbols if s in tile]
    out = dict(settings)
    out["types"] = [t for t in all_types if (t if isinstance(t, str) else t[0]) in tile]
    out["pairs"] = _tile_pairs(settings, types, lower)
    out["hierarchical"] = bool(owners)
    exclude = exclusions_for(types, list(owners), settings["orders"])
    out["exclude"] = {str(b): [" ".join(e) for e in entries] for b, entries in exclude.items()}
    view = _settings_view(types, out)
    special = {}
    for (body, kind), spec in sorted(_settings_special(settings).items()):
        clusters = [a for a in _clusters(types, _BODY[body]) if frozenset(a) not in owners]
        entries = _specific_entries(view, spec, body, clusters)
        if entries and view["orders"][_BODY[body] - 2] > 0:
            special[f"{body} {kind}"] = entries
    out["special"] = special
    check_consistency(types, out, lower)
    return out


def _tile_pairs(settings: dict, types: list[str], lower: list[ChimesParams]) -> dict:
    """Pair settings of the tile's types; pairs present in a lower tile take that tile's values."""
    given = {}
    for key, v in settings.get("pairs", {}).items():
        a, b = key if isinstance(key, tuple) else key.replace("-", " ").split()
        given[tuple(sorted((a, b)))] = dict(v if isinstance(v, dict) else vars(v))
    out = {}
    for i, a in enumerate(types):
        for b in types[i:]:
            out[f"{a}-{b}"] = _tile_pair(given, a, b, lower)
    return out


def _tile_pair(given: dict, a: str, b: str, lower: list[ChimesParams]) -> dict:
    """One pair's settings: the first lower tile that has the pair wins over the global settings."""
    key = tuple(sorted((a, b)))
    entry = dict(given.get(key, {}))
    found = [q for p in lower for q in p.pairs if tuple(sorted((q.atom1, q.atom2))) == key]
    if found:
        entry.update(s_minim=found[0].s_minim, s_maxim=found[0].s_maxim, morse_lambda=found[0].morse_lambda)
    if not {"s_minim", "s_maxim", "morse_lambda"} <= set(entry):
        raise HierarchyError(f"pair {a}-{b}: no S_MINIM/S_MAXIM/MORSE_LAMBDA in the settings' pairs and no "
                             f"lower tile has it; add pairs['{a}-{b}'] to the settings")
    return entry


# ===================================================================== residual data
def _sub_configuration(frames, i: int, elements: set[str]):
    """(atom indices, symbols, positions, cell, pbc) of frame ``i`` restricted to ``elements``."""
    sl = frames.frame_slice(i)
    symbols = frames.symbols(i)
    keep = np.array([s in elements for s in symbols], dtype=bool)
    idx = np.arange(sl.start, sl.stop)[keep]
    return idx, [s for s, k in zip(symbols, keep, strict=True) if k], frames.positions[idx], frames.cells[i], \
        frames.pbc[i]


def _evaluate(model, symbols, positions, cell, pbc):
    """Evaluate a sub-configuration; fully periodic or fully open cells only."""
    if pbc.all():
        return model.evaluate(symbols, positions, cell, pbc=True)
    if not pbc.any():
        return model.evaluate(symbols, positions, None, pbc=False)
    raise HierarchyError(f"mixed periodicity {pbc.tolist()} is not supported for residuals; use fully periodic "
                         "or fully open frames")


def tile_contribution(frames, params: ChimesParams) -> dict[str, np.ndarray]:
    """What one lower potential contributes to each frame (eV units, ASE stress convention).

    The potential is evaluated on the sub-configuration of its own elements (same cell, other atoms dropped);
    energies include its energy offsets.  Returns ``energy`` (F,), ``forces`` (Ntot, 3) and ``stress`` (F, 6),
    zero for frames (and atoms) without the potential's elements.
    """
    from .evaluate import ChimesModel

    model = ChimesModel(params)
    elements = set(params.symbols)
    energy = np.zeros(len(frames))
    forces = np.zeros((len(frames.numbers), 3))
    stress = np.zeros((len(frames), 6))
    for i in range(len(frames)):
        idx, symbols, positions, cell, pbc = _sub_configuration(frames, i, elements)
        if not len(idx):
            continue
        res = _evaluate(model, symbols, positions, cell, pbc)
        energy[i] = res.energy * EV_PER_KCALMOL
        forces[idx] = res.forces * EV_PER_KCALMOL
        if res.stress is not None:
            s = -res.stress * EV_PER_KCALMOL  # ASE sign: tension positive
            stress[i] = [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
    return {"energy": energy, "forces": forces, "stress": stress}


def residual_frames(frames, lower: list[ChimesParams]):
    """Frames whose labels are the reference minus the contributions of the lower tiles (al_driver subtract).

    Missing labels (NaN) stay missing; tags are kept and ``residual_of`` lists the subtracted tiles.
    """
    from .frames import FrameSet

    lower = list(lower)
    _check_disjoint(lower)
    energy, forces, stress = frames.energy.copy(), frames.forces.copy(), frames.stress.copy()
    names = []
    for p in lower:
        part = tile_contribution(frames, p)
        energy -= part["energy"]
        forces -= part["forces"]
        stress -= part["stress"]
        names += [tile_name(t) for t in held_tiles(p)]
    tags = [{**t, "residual_of": list(t.get("residual_of", [])) + names} for t in frames.tags]
    return FrameSet(frames.numbers.copy(), frames.natoms.copy(), frames.positions.copy(), frames.cells.copy(),
                    frames.pbc.copy(), energy, forces, stress, frames.electronic_temperature.copy(), tags)


# ===================================================================== merging
def _block_owner(blk: ClusterBlock, owners: dict) -> ChimesParams | None:
    """The lower potential that holds a cluster block's tile, if any."""
    return owners.get(frozenset(blk.atoms))


def _check_new_fit_blocks(new_fit: ChimesParams, owners: dict, lower_blocks: str) -> None:
    """The new fit leaves the lower tiles' interactions to them, and holds what no lower tile provides."""
    clash = [t for t in held_tiles(new_fit) if t in owners]
    if clash and lower_blocks == "strict":
        t = clash[0]
        raise HierarchyError(f"{_label(owners[t])}: the new fit {os.path.basename(str(new_fit.source))} also holds "
                             f"interactions of tile {tile_name(t)} ({_nonzero_of(new_fit, t)}), so the merged model "
                             "would not be the sum of the parts; refit with those interactions excluded "
                             "(exclusions_for), or merge with lower_blocks='replace' to discard the new fit's "
                             "values as al_driver's hierarch.py does")
    for blk in (*new_fit.triplets, *new_fit.quadruplets):
        if blk.excluded and _block_owner(blk, owners) is None:
            raise HierarchyError(f"tile {tile_name(blk.atoms)}: cluster {' '.join(blk.atoms)} is EXCLUDED in the "
                                 f"new fit {os.path.basename(str(new_fit.source))} but no lower tile provides it; "
                                 "give that tile's parameter file or refit without the exclusion")


def _nonzero_of(p: ChimesParams, tile: frozenset) -> str:
    """Which of a parameter set's blocks of ``tile`` are non-zero (for error messages)."""
    parts = []
    if p.energy_offsets is not None:
        parts += [f"ENERGY OFFSET {s}" for s, e in zip(p.symbols, p.energy_offsets, strict=True)
                  if e != 0.0 and frozenset([s]) == tile]
    parts += [f"pair {q.name}" for q, c in zip(p.pairs, p.pair_coeffs, strict=True)
              if frozenset((q.atom1, q.atom2)) == tile and np.any(np.asarray(c) != 0.0)]
    parts += [f"cluster {' '.join(b.atoms)}" for b in (*p.triplets, *p.quadruplets)
              if frozenset(b.atoms) == tile and not b.excluded and np.any(b.values != 0.0)]
    return ", ".join(parts) + " non-zero"


def _merged_penalty(new_fit: ChimesParams, lower: list[ChimesParams], penalty) -> tuple:
    """One penalty setting: the explicit one, else the one all files that set it agree on (none: defaults)."""
    if penalty is not None:
        d, a = penalty
        return float(d), float(a)
    given = {}
    for p in (new_fit, *lower):
        if p.penalty_dist is not None or p.penalty_scaling is not None:
            given.setdefault(p.penalty, []).append(os.path.basename(str(p.source)))
    if len(given) > 1:
        listed = "; ".join(f"{', '.join(v)}: DIST {k[0]} SCALING {k[1]}" for k, v in given.items())
        raise HierarchyError(f"penalty settings differ ({listed}); the merged file has one: pass "
                             "penalty=(dist, scaling) to merge_tiles")
    return next(iter(given)) if given else (None, None)


def _merged_pair_coeffs(new_fit: ChimesParams, owners: dict) -> tuple[list, list]:
    """Pair coefficients: each lower tile's pairs (padded with zeros to O2B), the new fit's elsewhere."""
    o2 = new_fit.orders[0]
    powers, coeffs = [], []
    for q in new_fit.pairs:
        dense = np.zeros(o2)
        owner = owners.get(frozenset((q.atom1, q.atom2)))
        src = owner if owner is not None else new_fit
        k = src.pair_index(q.atom1, q.atom2)
        np.add.at(dense, np.asarray(src.pair_powers[k]), np.asarray(src.pair_coeffs[k], dtype=float))
        powers.append(np.arange(o2, dtype=np.int64))
        coeffs.append(dense)
    return powers, coeffs


def _merged_blocks(new_fit: ChimesParams, blocks: list[ClusterBlock], owners: dict, nbody: int) -> list:
    """Cluster blocks: the lower tile's block for its clusters (re-indexed), the new fit's elsewhere.

    A cluster of a lower tile that the tile does not have (e.g. a 2-body-only tile) stays EXCLUDED.
    """
    out = []
    for blk in blocks:
        owner = _block_owner(blk, owners)
        if owner is None:
            out.append(copy.deepcopy(blk))
            continue
        found = [b for b in (owner.triplets if nbody == 3 else owner.quadruplets) if b.atoms == blk.atoms]
        src = found[0] if found and not found[0].excluded else None
        if src is None:
            empty = np.zeros(0, dtype=np.int64)
            out.append(ClusterBlock(blk.index, blk.atoms, blk.pairs, True, 0, np.zeros((0, blk.powers.shape[1]),
                                    dtype=np.int64), empty, empty.copy(), np.zeros(0)))
            continue
        if src.pairs != blk.pairs:
            raise HierarchyError(f"{_label(owner)}: cluster {' '.join(blk.atoms)} has pairs {' '.join(src.pairs)} "
                                 f"but {' '.join(blk.pairs)} in the new fit; use one type order in every file")
        out.append(ClusterBlock(blk.index, src.atoms, src.pairs, False, src.unique, src.powers.copy(),
                                src.equiv.copy(), src.param.copy(), src.values.copy()))
    return out


def _merged_maps(params: ChimesParams, nbody: int) -> list[tuple[int, str]]:
    """Map labels recomputed from the blocks: a key's cluster index, -1 only where still excluded."""
    blocks = params.triplets if nbody == 3 else params.quadruplets
    maps = params.tripmaps if nbody == 3 else params.quadmaps
    view = _params_view(params)
    keys = _key_atoms(view["types"], view["names"], nbody)
    index = {b.atoms: (-1 if b.excluded else b.index) for b in blocks}
    return [(index.get(keys.get(key), label), key) for label, key in maps]


def _merged_special(new_fit: ChimesParams, lower: list[ChimesParams], owners: dict) -> dict:
    """SPECIAL settings that give every cluster the cutoffs it had in the part that owns it.

    Entries keep their file order: the new fit's first, then each lower tile's (as al_driver appends them).
    ``ALL`` settings become entries for the owner's clusters.  4B S_MINIM needs every owned quad listed,
    because chimesFF gives unlisted quads an inner cutoff of -1.
    """
    out = {}
    for body, kind in itertools.product(BODY_KEYS, SPECIAL_KINDS):
        nbody = _BODY[body]
        parts = [new_fit, *lower]
        if not any((body, kind) in p.special for p in parts) or new_fit.orders[nbody - 2] == 0:
            continue
        entries = []
        for p in parts:
            view = _params_view(p)
            blocks = p.triplets if nbody == 3 else p.quadruplets
            owned = [b.atoms for b in blocks if not b.excluded and owners.get(frozenset(b.atoms), new_fit) is p]
            spec = p.special.get((body, kind))
            if spec is None and (body, kind) == ("4B", "S_MINIM"):
                spec = SpecialCutoffs("SPECIFIC", entries=[
                    ("".join(_block_pairs(a, view["names"])), _block_pairs(a, view["names"]), vals)
                    for a, vals in _special_values(view["types"], view["names"], view["pairs"], {}, body, kind,
                                                   owned).items()])
            if spec is not None:
                entries += [(k, tuple(n), tuple(v)) for k, n, v in _specific_entries(view, spec, body, owned)]
        if entries or (body, kind) == ("4B", "S_MINIM"):
            out[(body, kind)] = SpecialCutoffs("SPECIFIC", entries=entries)
    return out


def _merged_offsets(new_fit: ChimesParams, owners: dict):
    """Energy offsets: each single-element tile's offset from its owner, the new fit's for the other types."""
    if new_fit.energy_offsets is None and all(p.energy_offsets is None for p in owners.values()):
        return None
    out = np.zeros(len(new_fit.types)) if new_fit.energy_offsets is None else np.array(new_fit.energy_offsets, float)
    for i, s in enumerate(new_fit.symbols):
        owner = owners.get(frozenset([s]))
        if owner is not None:
            out[i] = 0.0 if owner.energy_offsets is None else owner.energy_offsets[owner.symbols.index(s)]
    return out


def merge_tiles(new_fit: ChimesParams, lower: list[ChimesParams], *, penalty=None,
                lower_blocks: str = "strict") -> ChimesParams:
    """Merge a new (cross-tile) fit with its lower tiles into one parameter set (al_driver hierarch.py rules).

    The new fit is the template (types, pairs, orders, maps); each lower tile contributes its pair coefficients
    (zero-padded to the new O2B), cluster blocks (with their map labels restored), SPECIAL entries and energy
    offsets.  The merged model equals the new fit plus each lower tile evaluated on its own elements, except
    inside the 2-body penalty region (not part of any fit): the merged file has one penalty setting, ``penalty``
    = (dist, scaling) or the one the input files agree on.  SPECIAL S_MINIM settings are carried over like
    S_MAXIM (al_driver drops them), so that every cluster keeps its inner cutoffs.  Charges and masses of a lower
    tile's types come from the tile (as in hierarch.py; they do not enter energies).  EXCLD1B/EXCLD2B header flags
    are dropped (they describe a fit, not the merged model).  ``lower_blocks='strict'`` refuses a new fit that
    holds non-zero coefficients of a lower tile; ``'replace'`` discards them, as hierarch.py does.
    """
    if lower_blocks not in ("strict", "replace"):
        raise HierarchyError(f"lower_blocks must be 'strict' or 'replace', found {lower_blocks!r}")
    lower = list(lower)
    fit = f"the new fit {os.path.basename(str(new_fit.source))}"
    view = _params_view(new_fit)
    _check_type_order(view["types"], lower, fit)
    _check_disjoint(lower)
    _check_pairs(view, lower, fit)
    _check_fcut(view, lower, fit)
    _check_orders(view, lower, fit)
    for p in lower:
        _check_tile_manybody(p)
    owners = _owner_map(lower)
    _check_new_fit_blocks(new_fit, owners, lower_blocks)

    merged = copy.deepcopy(new_fit)
    merged.flags = {k: v for k, v in new_fit.flags.items() if k not in _EXCLUDE_FLAGS}
    for t in merged.types:
        owner = owners.get(frozenset([t.symbol]))
        if owner is not None:
            src = owner.types[owner.symbols.index(t.symbol)]
            t.charge, t.mass = src.charge, src.mass
    merged.pair_powers, merged.pair_coeffs = _merged_pair_coeffs(new_fit, owners)
    merged.penalty_dist, merged.penalty_scaling = _merged_penalty(new_fit, lower, penalty)
    merged.special = _merged_special(new_fit, lower, owners)
    merged.triplets = _merged_blocks(new_fit, new_fit.triplets, owners, 3)
    merged.quadruplets = _merged_blocks(new_fit, new_fit.quadruplets, owners, 4)
    merged.tripmaps = _merged_maps(merged, 3)
    merged.quadmaps = _merged_maps(merged, 4)
    merged.energy_offsets = _merged_offsets(new_fit, owners)
    sources = ", ".join(f"{tile_name(t)} ({os.path.basename(str(p.source))})" for t, p in owners.items())
    merged.comments = [f"! hierarchical merge of {os.path.basename(str(new_fit.source))} with tiles {sources}"]
    merged.source = "<merged>"
    return merged
