"""Row weights of a ChIMES fit, as the ChIMES active-learning driver (al_driver) builds them.

A row of class force, energy or stress gets the weight of its class (``shared/notes/chimes.md`` section 4.3;
al_driver ``gen_ff.py`` ``solve_amat``/``gen_weights``).  Gas-phase (cluster) rows, tagged ``G_`` in
al_driver's ``b-labeled.txt``, use the ``force_gas`` / ``energy_gas`` weights instead.  A weight is either a
number or the al_driver form ``[[styles], [[params], ...]]``, whose factors are multiplied together; with X the
row's reference value b (ChIMES units, unweighted), n the atom count of its frame and ALC the
active-learning cycle:

====  ===================================  ==========
style weight factor                         parameters
====  ===================================  ==========
A     a0                                    a0
B     a0 * ALC^a1 (ALC = 0 counts as 1)     a0 a1
C     a0 * exp(a1 * |X| / a2)               a0 a1 a2
D     a0 * exp(a1 * (X - a2) / a3)          a0 .. a3
E     n^a0                                  a0
F     a0 * exp(a1 * (X/n - a2) / a3)        a0 .. a3
G     a0 * exp(a1 * (|X| - a2) / a3)        a0 .. a3
====  ===================================  ==========

The weights multiply the rows (``chimes_lsq.py --weights``: ``A' = w A``, ``b' = w b``), so a row's squared
residual counts w^2 times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_WEIGHTS",
    "STYLE_NPARAMS",
    "read_weights_file",
    "row_weights",
    "style_factor",
    "weight_values",
    "write_weights_file",
]

#: al_driver defaults (``solve_amat``): forces 1.0, gas forces 5.0, energies 0.1, gas energies 0.01, stress 250.
DEFAULT_WEIGHTS = {"force": 1.0, "force_gas": 5.0, "energy": 0.1, "energy_gas": 0.01, "stress": 250.0}
#: Number of parameters of each style.
STYLE_NPARAMS = {"A": 1, "B": 2, "C": 3, "D": 4, "E": 1, "F": 4, "G": 4}
_CLASS_NAMES = ("force", "energy", "stress")


def style_factor(style, params, X, natoms=None, alc=0) -> np.ndarray:
    """Weight factor of one style (A-G, see the module doc) for the reference values X (array)."""
    style = str(style).strip().upper()
    if style not in STYLE_NPARAMS:
        raise ValueError(f"unknown weight style {style!r}; expected one of {sorted(STYLE_NPARAMS)}")
    p = [float(v) for v in np.atleast_1d(np.asarray(params, dtype=np.float64))]
    if len(p) != STYLE_NPARAMS[style]:
        raise ValueError(f"weight style {style} takes {STYLE_NPARAMS[style]} parameter(s), got {len(p)}: {params}")
    X = np.asarray(X, dtype=np.float64)
    if style in ("E", "F"):
        if natoms is None:
            raise ValueError(f"weight style {style} needs the atom counts (natoms)")
        n = np.broadcast_to(np.asarray(natoms, dtype=np.float64), X.shape)
    if style == "A":
        return np.full(X.shape, p[0])
    if style == "B":
        eff = 1 if int(alc) == 0 else int(alc)
        return np.full(X.shape, p[0] * float(eff) ** p[1])
    if style == "C":
        return p[0] * np.exp(p[1] * np.abs(X) / p[2])
    if style == "D":
        return p[0] * np.exp(p[1] * (X - p[2]) / p[3])
    if style == "E":
        return n ** p[0]
    if style == "F":
        return p[0] * np.exp(p[1] * (X / n - p[2]) / p[3])
    return p[0] * np.exp(p[1] * (np.abs(X) - p[2]) / p[3])  # G


def _parse_spec(value):
    """Normalise a weight specification to a list of (style, params) pairs."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return [("A", [float(value)])]
    if isinstance(value, str):
        return [("A", [float(value)])]
    if isinstance(value, Sequence) and len(value) == 2:
        styles, params = value
        if isinstance(styles, str):  # single style: ["C", [a0, a1, a2]]
            return [(styles, params)]
        if len(styles) != len(params):
            raise ValueError(f"number of weight styles {list(styles)} does not match the parameter sets {params}")
        return list(zip(styles, params, strict=True))
    raise ValueError(f"cannot interpret weight specification {value!r}: expected a number or [[styles], [[params]]]")


def weight_values(value, X, natoms=None, alc=0) -> np.ndarray:
    """Weights of rows with reference values X for one specification (number or ``[[styles], [[params]]]``)."""
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape)
    for style, params in _parse_spec(value):
        w = w * style_factor(style, params, X, natoms, alc)
    return w


def row_weights(classes, b, natoms=None, spec: Mapping | None = None, alc: int = 0, gas=None) -> np.ndarray:
    """Weights of rows from their classes (codes 0/1/2 or names force/energy/stress) and reference values b.

    spec: per-class specifications (keys ``force``, ``energy``, ``stress``, ``force_gas``, ``energy_gas``);
    missing keys take :data:`DEFAULT_WEIGHTS`.  natoms: atom count of each row's frame (needed by styles E, F).
    alc: active-learning cycle (style B).  gas: boolean per row, True for gas-phase (cluster) rows, which use
    ``force_gas`` / ``energy_gas`` (stress rows have no gas variant).
    """
    spec = dict(spec or {})
    unknown = set(spec) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown weight classes {sorted(unknown)}; expected {sorted(DEFAULT_WEIGHTS)}")
    full = {**DEFAULT_WEIGHTS, **spec}
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    n = b.shape[0]
    cls = np.asarray(classes)
    if cls.ndim == 0:
        cls = np.full(n, cls.item())
    cls = cls.reshape(-1)
    if cls.shape[0] != n:
        raise ValueError(f"classes has {cls.shape[0]} entries, b has {n}")
    if cls.dtype.kind in "US" or cls.dtype == object:
        names = np.asarray([str(c) for c in cls])
        if not np.isin(names, _CLASS_NAMES).all():
            raise ValueError(f"class names must be among {_CLASS_NAMES}")
        codes = np.array([_CLASS_NAMES.index(c) for c in names], dtype=np.int64)
    else:
        codes = cls.astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() > 2):
            raise ValueError("class codes must be 0 (force), 1 (energy) or 2 (stress)")
    nat = None
    if natoms is not None:
        nat = np.broadcast_to(np.asarray(natoms, dtype=np.float64), (n,))
    isgas = np.zeros(n, dtype=bool) if gas is None else np.broadcast_to(np.asarray(gas, dtype=bool), (n,))
    w = np.empty(n)
    groups = (
        ("force", (codes == 0) & ~isgas),
        ("force_gas", (codes == 0) & isgas),
        ("energy", (codes == 1) & ~isgas),
        ("energy_gas", (codes == 1) & isgas),
        ("stress", codes == 2),
    )
    for key, mask in groups:
        if mask.any():
            w[mask] = weight_values(full[key], b[mask], None if nat is None else nat[mask], alc)
    return w


def read_weights_file(path) -> np.ndarray:
    """Read a weights file (one weight per line, as ``chimes_lsq.py --weights`` reads it)."""
    return np.atleast_1d(np.loadtxt(Path(path), dtype=np.float64, ndmin=1))


def write_weights_file(path, weights) -> None:
    """Write one weight per line (round-trip precision)."""
    np.savetxt(Path(path), np.asarray(weights, dtype=np.float64).reshape(-1), fmt="%.17g")
