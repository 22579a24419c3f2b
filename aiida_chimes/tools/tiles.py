"""Tile reuse across projects: a content signature of a tile fit and a registry of converged tiles (a group).

The signature covers exactly what defines a tile fit, so that a registered tile is a valid drop-in for a new fit
with the same signature: the tile's elements in the fit's type order, the polynomial orders, cutoffs and Morse
lambdas of the pairs of those elements, the many-body cutoffs of the clusters the fit holds, the cutoff function,
the Chebyshev range, the reference method with its settings, and the sha256 of the lower tiles the fit was made
on (a higher tile is fitted to residuals, so it only fits those tiles).  How the fit was done (training frames,
weights, solver) is deliberately left out: any converged fit of the same model to the same reference qualifies.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from aiida import orm

from aiida_chimes.chimes import hierarchy
from aiida_chimes.chimes.params import ChimesParams, format_params
from aiida_chimes.data.potential import ChimesPotentialData

__all__ = ("GROUP_LABEL", "TileSignature", "find_tile", "register_tile", "signature_hash", "tile_signature")

#: Label of the group holding the registered tile potentials.
GROUP_LABEL = "chimes/tiles"
#: Version of the signature layout (part of the hash: a new layout never matches an old registration).
SIGNATURE_VERSION = 1
EXTRA_TILE, EXTRA_SIGNATURE, EXTRA_HASH, EXTRA_PROJECT = (
    "chimes_tile",
    "chimes_tile_signature",
    "chimes_tile_signature_sha256",
    "chimes_tile_project",
)
_TOL = 1e-9


class TileSignature(NamedTuple):
    """The canonical signature dict of a tile fit and its sha256."""

    content: dict
    sha256: str


# ===================================================================== canonical values
def _canonical(value, where: str):
    """JSON-able copy with sorted keys; integral floats become ints (500.0 == 500); AiiDA base nodes unwrapped."""
    if isinstance(value, orm.Dict):
        value = value.get_dict()
    elif isinstance(value, orm.List):
        value = value.get_list()
    elif isinstance(value, orm.BaseType):
        value = value.value
    elif isinstance(value, orm.Data):
        raise TypeError(
            f"tile signature: {where} is a {type(value).__name__} node; give its content as plain "
            "values (e.g. a kpoints mesh as a list)"
        )
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy scalars
    if isinstance(value, Mapping):
        out = {}
        for key in sorted(value, key=str):
            if "." in str(key):
                raise ValueError(
                    f"tile signature: key {key!r} of {where} contains '.', which AiiDA extras do not "
                    "allow; rename the key"
                )
            out[str(key)] = _canonical(value[key], f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and not isinstance(value, (str, bytes))):
        seq = value.tolist() if hasattr(value, "tolist") else value
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(seq)]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"tile signature: {where} is {value}; give a finite number")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    raise TypeError(f"tile signature: {where} has type {type(value).__name__}; use numbers, strings, lists, dicts")


def signature_hash(content: dict) -> str:
    """sha256 of a signature dict (canonical JSON: sorted keys, no spaces)."""
    text = json.dumps(_canonical(content, "signature"), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# ===================================================================== the signature
def _lower(lower_tiles, tile: frozenset) -> tuple[list[ChimesParams], list[str]]:
    """Parsed lower tiles inside ``tile`` and their content sha256 (nodes or ChimesParams)."""
    params, shas = [], []
    for item in lower_tiles:
        if isinstance(item, ChimesPotentialData):
            p, sha = item.get_params(), item.sha256
        elif isinstance(item, ChimesParams):
            p, sha = item, hashlib.sha256(format_params(item).encode()).hexdigest()
        else:
            raise TypeError(f"lower tiles must be ChimesPotentialData or ChimesParams, got {type(item).__name__}")
        if set(p.symbols) <= tile:
            params.append(p)
            shas.append(sha)
    return params, sorted(shas)


def _elements(elements) -> frozenset:
    """The tile of ``elements``: symbols, or a tile name such as ``"CN"`` (one capital letter per symbol)."""
    if isinstance(elements, str):
        return hierarchy.tile_from_name(elements)
    return hierarchy.tile_of(list(elements))


def tile_signature(elements: Iterable[str], settings, reference: Mapping, *, lower_tiles=()) -> TileSignature:
    """Signature of the fit of tile ``elements`` (symbols or a tile name, ``"CN"``) with global fit ``settings``
    (dict or FitSetup) against ``reference``.

    ``reference``: the labelling method and its settings, e.g. ``{"method": "xtb", "parameters": {...}}`` or
    ``{"method": "vasp", "incar": {...}, "kpoints": [4, 4, 4], "potential_family": "PBE.54"}``.
    ``lower_tiles``: the tile potentials the fit builds on (those outside the tile are ignored).
    The result does not depend on dict key order; settings are checked (HierarchyError naming tile and fix).
    """
    tile = _elements(elements)
    if not isinstance(reference, Mapping) or not isinstance(reference.get("method"), str):
        raise ValueError(
            f"tile {hierarchy.tile_name(tile)}: reference must be a dict with a 'method' string "
            f"(e.g. {{'method': 'xtb', 'parameters': {{...}}}}), got {reference!r}"
        )
    lower, lower_sha = _lower(lower_tiles, tile)
    fit = hierarchy.settings_for_tile(settings, tile, lower)
    types = [t if isinstance(t, str) else t[0] for t in fit["types"]]
    pairs = {}
    for key, v in fit["pairs"].items():
        a, b = key.replace("-", " ").split()
        pairs["-".join(sorted((a, b)))] = {k: float(v[k]) for k in ("s_minim", "s_maxim", "morse_lambda")}
    special = {
        key: sorted([[k, list(n), [float(x) for x in vals]] for k, n, vals in entries])
        for key, entries in fit["special"].items()
    }
    fcut_type = fit.get("fcut_type", "CUBIC")
    fcut_var = fit.get("fcut_var") if fcut_type == "TERSOFF" else None
    orders = (list(fit["orders"]) + [0, 0, 0])[:3]
    content = {
        "version": SIGNATURE_VERSION,
        "tile": hierarchy.tile_name(tile),
        "types": types,
        "orders": [int(o) for o in orders],
        "pairs": pairs,
        "special": special,
        "fcut": {"type": fcut_type, "var": None if fcut_var is None else float(fcut_var)},
        "cheby_range": [float(x) for x in fit.get("cheby_range") or (-1.0, 1.0)],
        "reference": dict(reference),
        "lower_tiles": lower_sha,
        "lower_tile_names": sorted({hierarchy.tile_name(t) for p in lower for t in hierarchy.held_tiles(p)}),
    }
    content = _canonical(content, "signature")
    return TileSignature(content, signature_hash(content))


def _as_signature(signature) -> TileSignature:
    """A TileSignature from itself or from its content dict (hash recomputed)."""
    if isinstance(signature, TileSignature):
        return signature
    if isinstance(signature, Mapping) and "tile" in signature:
        content = _canonical(signature, "signature")
        return TileSignature(content, signature_hash(content))
    raise TypeError(
        f"expected a TileSignature (from tile_signature) or its content dict, got {type(signature).__name__}"
    )


# ===================================================================== checks of a potential against a signature
def _check_potential(potential: ChimesPotentialData, sig: dict) -> None:
    """The potential fits the signature's model: same types, orders, pair cutoffs; no lower tile's interactions."""
    who = f"{type(potential).__name__}<{potential.pk if potential.is_stored else 'unstored'}>"
    tile = sig["tile"]
    if potential.elements != sig["types"]:
        raise ValueError(
            f"tile {tile}: {who} has atom types {potential.elements}, the signature {sig['types']}; "
            "register the tile fit itself (not a merged or other potential)"
        )
    orders = [potential.orders.get(k, 0) for k in ("2b", "3b", "4b")]
    if orders != sig["orders"]:
        raise ValueError(
            f"tile {tile}: {who} has orders {orders} but the signature {sig['orders']}; compute the "
            "signature from the settings of this fit"
        )
    names = {a + b: "-".join(sorted((a, b))) for i, a in enumerate(sig["types"]) for b in sig["types"][i:]}
    for name, cut in potential.cutoffs.items():
        want = sig["pairs"].get(names.get(name, name))
        have = (cut["rmin"], cut["rmax"], cut["morse_lambda"])
        if want is None or not all(
            math.isclose(h, want[k], rel_tol=_TOL, abs_tol=_TOL)
            for h, k in zip(have, ("s_minim", "s_maxim", "morse_lambda"), strict=True)
        ):
            raise ValueError(
                f"tile {tile}: pair {name} of {who} has S_MINIM/S_MAXIM/MORSE_LAMBDA {list(have)}, the "
                f"signature {want}; compute the signature from the settings of this fit"
            )
    tiles = {"".join(sorted(t)) for t in potential.tiles or []}
    if tile not in tiles:
        raise ValueError(
            f"tile {tile}: {who} holds no interaction of tile {tile} (tiles {sorted(tiles)}); "
            "register a converged fit of that tile"
        )
    lower = sorted(tiles & set(sig["lower_tile_names"]))
    if lower:
        raise ValueError(
            f"tile {tile}: {who} also holds the lower tiles {lower} it was fitted on (a merged "
            "potential?); register the tile fit itself, whose lower-tile interactions are excluded"
        )


# ===================================================================== the registry
def _group() -> orm.Group:
    group, _ = orm.Group.collection.get_or_create(label=GROUP_LABEL)
    return group


def register_tile(potential: ChimesPotentialData, signature, *, project: str | None = None) -> ChimesPotentialData:
    """Add a converged tile potential to the group ``chimes/tiles`` with its signature as extras; returns it.

    Extras: ``chimes_tile`` (tile name), ``chimes_tile_signature`` (the dict), ``chimes_tile_signature_sha256`` and,
    when given, ``chimes_tile_project``.  Registering again with the same signature is a no-op.
    """
    if not isinstance(potential, ChimesPotentialData):
        raise TypeError(f"expected a ChimesPotentialData, got {type(potential).__name__}")
    sig = _as_signature(signature)
    _check_potential(potential, sig.content)
    if not potential.is_stored:
        potential.store()
    extras = potential.base.extras
    old = extras.get(EXTRA_HASH, None)
    if old is not None and old != sig.sha256:
        raise ValueError(
            f"tile {sig.content['tile']}: ChimesPotentialData<{potential.pk}> is already registered "
            f"with signature {old[:12]} (tile {extras.get(EXTRA_TILE, '?')}), not {sig.sha256[:12]}; "
            "a potential has one signature: register a fit made with these settings"
        )
    new = {EXTRA_TILE: sig.content["tile"], EXTRA_SIGNATURE: sig.content, EXTRA_HASH: sig.sha256}
    if project is not None:
        new[EXTRA_PROJECT] = str(project)
    extras.set_many(new)
    _group().add_nodes(potential)
    return potential


def find_tile(signature) -> ChimesPotentialData | None:
    """The newest registered tile potential with this signature (TileSignature, its dict or its sha256), or None."""
    sha = signature if isinstance(signature, str) else _as_signature(signature).sha256
    qb = orm.QueryBuilder()
    qb.append(orm.Group, filters={"label": GROUP_LABEL}, tag="group")
    qb.append(ChimesPotentialData, with_group="group", tag="tile", filters={f"extras.{EXTRA_HASH}": sha})
    qb.order_by({"tile": [{"ctime": "desc"}, {"id": "desc"}]})
    return qb.first(flat=True)
