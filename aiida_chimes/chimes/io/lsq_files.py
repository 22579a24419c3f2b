"""The files ``chimes_lsq`` (C++) and its solver ``chimes_lsq.py`` exchange, read and written byte for byte.

Before the solve, ``chimes_lsq`` writes (shared/notes/chimes.md 2, 4.1):

* ``params.header``: the model without coefficients (flags, orders, atom types, pair table, cutoff type,
  ``SPECIAL`` cutoffs and, for every 3-/4-body cluster type, its power table with the ``equiv index`` and
  the ``param index``, which is the column offset of the coefficient inside the cluster's block of the
  design matrix);
* ``ff_groups.map``: the ``PAIRMAPS`` / ``TRIPMAPS`` / ``QUADMAPS`` tables;
* ``A.txt``, ``b.txt``, ``b-labeled.txt``, ``natoms.txt``, ``dim.txt``: the design matrix, the targets,
  labelled targets, the frame size of each row and the matrix dimensions.

The solver then writes ``params.txt`` (``!`` log lines, the echoed header, the coefficients, the maps and the
energy offsets), ``force.txt`` (A x) and, with ``--test_suite``, ``test_suite_params.txt`` (x).

:func:`parse_params_header` turns a header and a map file into a :class:`~aiida_chimes.chimes.params.ChimesParams`
"skeleton" (all coefficients 0.0); :func:`format_params_header` and :func:`format_ff_groups_map` write them
back exactly as ``chimes_lsq`` does; :func:`fill_coefficients` maps a solution vector onto the skeleton the
way ``chimes_lsq.py`` does and :func:`format_solved_params` writes the resulting ``params.txt``.

Coefficient vector layout (one entry per design-matrix column, :func:`n_columns`, :func:`column_labels`):

1. 2-body: ``O2B`` entries for every pair type not listed in ``EXCLD2B`` (pair order);
2. 3-body: ``UNIQUE`` entries for every non-excluded triplet type (index order);
3. 4-body: the same for the quadruplet types;
4. with ``FITCOUL: true``: one charge product per pair type;
5. when energies are fitted: one energy offset per atom type not listed in ``EXCLD1B``.

Excluded pairs and types are read from the ``EXCLD2B`` / ``EXCLD1B`` flags (0-based index lists, or
``false``); excluded cluster types are the ``EXCLUDED:`` blocks.
"""

from __future__ import annotations

import copy
import datetime
import gzip
import itertools
import os
from collections.abc import Sequence

import numpy as np

from ..params import (
    AtomType,
    ChimesParams,
    ClusterBlock,
    PairType,
    ParamsFormatError,
    SpecialCutoffs,
    format_params,
    parse_params,
)

__all__ = [
    "parse_params_header",
    "read_params_header",
    "format_params_header",
    "format_ff_groups_map",
    "with_header_flags",
    "excluded_pairs",
    "excluded_types",
    "fits_charges",
    "n_columns",
    "column_labels",
    "fill_coefficients",
    "format_solved_params",
    "solver_comment_lines",
    "write_test_suite_params",
    "read_test_suite_params",
    "write_force_txt",
    "read_force_txt",
    "write_b_txt",
    "read_b_txt",
    "write_b_labeled",
    "read_b_labeled",
    "write_natoms_txt",
    "read_natoms_txt",
    "write_dim_txt",
    "read_dim_txt",
    "write_A",
    "read_A",
]

#: Flag lines ``print_param_header`` writes, in its order.
HEADER_FLAGS = ("USECOUL", "FITCOUL", "USE3BCH", "USE4BCH", "EXCLD1B", "EXCLD2B")
_LIST_FLAGS = ("EXCLD1B", "EXCLD2B")
_ROW_HEAD = "     index  |  powers  |  equiv index  |  param index  "
_ROW_DASH = "   " + "-" * 52
_PAR_HEAD = "     index  |  powers  |  equiv index  |  param index  |       parameter       "
_PAR_DASH = "   " + "-" * 76
_TUPLET = {3: "TRIPLETS", 4: "QUADRUPLETS"}


# ===================================================================== small helpers
def _g(x: float) -> str:
    """A double as C++ ``ostream <<`` writes it by default (``%g``, 6 significant digits)."""
    return f"{float(x):g}"


def _read_text(path) -> str:
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            return handle.read()
    except OSError as exc:
        raise ParamsFormatError(path, None, f"cannot open file ({exc.strerror})") from exc


def _open_write(path):
    path = os.fspath(path)
    if path.endswith(".gz"):
        return gzip.open(path, "wt")
    return open(path, "w")


def _index_list(p: ChimesParams, key: str) -> list[int]:
    value = p.flags.get(key, "false").strip()
    if value.lower() in ("", "false"):
        return []
    try:
        return [int(t) for t in value.split()]
    except ValueError as exc:
        raise ValueError(f"flag {key}: expected 'false' or a list of 0-based indices, found {value!r}") from exc


def excluded_pairs(p: ChimesParams) -> list[int]:
    """0-based pair indices listed in the ``EXCLD2B`` flag (empty for ``false`` or no flag)."""
    out = _index_list(p, "EXCLD2B")
    for i in out:
        if not 0 <= i < len(p.pairs):
            raise ValueError(f"EXCLD2B lists pair {i}, outside 0..{len(p.pairs) - 1}")
    return out


def excluded_types(p: ChimesParams) -> list[int]:
    """0-based atom-type indices listed in the ``EXCLD1B`` flag (empty for ``false`` or no flag)."""
    out = _index_list(p, "EXCLD1B")
    for i in out:
        if not 0 <= i < len(p.types):
            raise ValueError(f"EXCLD1B lists atom type {i}, outside 0..{len(p.types) - 1}")
    return out


def fits_charges(p: ChimesParams) -> bool:
    """True when the model's ``FITCOUL`` flag is ``true`` (one charge-product column per pair)."""
    return p.flag("FITCOUL")


# ===================================================================== params.header / ff_groups.map: reading
class _Cursor:
    def __init__(self, text: str, filename: str):
        self.raw = text.splitlines()
        self.filename = filename
        self.pos = 0

    def error(self, message: str, lineno: int | None):
        raise ParamsFormatError(self.filename, lineno, message)

    def next_nonblank(self, what: str) -> tuple[int, str, list[str]]:
        while self.pos < len(self.raw):
            line = self.raw[self.pos]
            self.pos += 1
            toks = line.split()
            if toks:
                return self.pos, line, toks
        self.error(f"unexpected end of file: expected {what}", len(self.raw) + 1)

    def to_int(self, tok: str, lineno: int, what: str) -> int:
        try:
            return int(tok)
        except ValueError:
            self.error(f"expected an integer for {what}, found {tok!r}", lineno)

    def to_float(self, tok: str, lineno: int, what: str) -> float:
        try:
            value = float(tok)
        except ValueError:
            self.error(f"expected a number for {what}, found {tok!r}", lineno)
        if not np.isfinite(value):
            self.error(f"{what} must be finite, found {tok!r}", lineno)
        return value


def _parse_cluster_block(cur: _Cursor, natoms: int, i: int, order: int) -> ClusterBlock:
    npair = natoms * (natoms - 1) // 2
    ln, _, t = cur.next_nonblank(f"' INDEX: {i} ATOMS: ...' ({natoms}-body block {i})")
    if len(t) != 3 + natoms or t[0] != "INDEX:" or t[2] != "ATOMS:":
        cur.error(f"expected 'INDEX: {i} ATOMS: {' '.join(['X'] * natoms)}', found {' '.join(t)!r}", ln)
    if cur.to_int(t[1], ln, "the block index") != i:
        cur.error(f"block index {t[1]} out of order: expected {i}", ln)
    atoms = tuple(t[3:])
    ln, _, t = cur.next_nonblank(f"' PAIRS: ...' ({natoms}-body block {i})")
    if t[0] != "PAIRS:" or len(t) < 2 + npair:
        cur.error(f"expected 'PAIRS: {' '.join(['AB'] * npair)} ...', found {' '.join(t)!r}", ln)
    pairs = tuple(t[1:1 + npair])
    rest = t[1 + npair:]
    if rest == ["EXCLUDED:"]:
        return ClusterBlock(i, atoms, pairs, True, 0, np.zeros((0, npair), dtype=np.int64),
                            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    if len(rest) != 5 or rest[1] != "parameters," or rest[3:] != ["total", "parameters"]:
        cur.error(f"expected 'PAIRS: ... <u> parameters, <n> total parameters' or 'PAIRS: ... EXCLUDED:', "
                  f"found {' '.join(t)!r}", ln)
    unique = cur.to_int(rest[0], ln, "the number of unique parameters")
    total = cur.to_int(rest[2], ln, "the total number of parameters")
    if unique < 0 or total < unique:
        cur.error(f"need 0 <= unique <= total parameters, found {unique} and {total}", ln)
    for what in ("the column titles 'index | powers | equiv index | param index'", "the dashes line"):
        ln, raw, _ = cur.next_nonblank(what)
        if not ("index" in raw or set(raw.strip()) <= {"-"}):
            cur.error(f"expected {what}, found {raw.strip()!r}", ln)
    powers = np.zeros((total, npair), dtype=np.int64)
    equiv = np.zeros(total, dtype=np.int64)
    param = np.zeros(total, dtype=np.int64)
    for r in range(total):
        ln, _, t = cur.next_nonblank(f"row {r} of {total} of {natoms}-body block {i}")
        if len(t) != 3 + npair:
            cur.error(f"expected {3 + npair} fields 'index {npair} powers equiv param' in row {r} of "
                      f"{natoms}-body block {i}, found {' '.join(t)!r}", ln)
        if cur.to_int(t[0], ln, "the row index") != r:
            cur.error(f"row index {t[0]} out of order: expected {r}", ln)
        for k in range(npair):
            pw = cur.to_int(t[1 + k], ln, "a power")
            if not 0 <= pw < order:
                cur.error(f"power {pw} outside 0..{order - 1} (order {order} = max power + 1)", ln)
            powers[r, k] = pw
        equiv[r] = cur.to_int(t[1 + npair], ln, "the equivalence index")
        param[r] = cur.to_int(t[2 + npair], ln, "the parameter index")
        if not 0 <= equiv[r] <= r:
            cur.error(f"equivalence index {equiv[r]} outside 0..{r} (the first row of its group)", ln)
        if not 0 <= param[r] < unique:
            cur.error(f"parameter index {param[r]} outside 0..{unique - 1} ({unique} unique parameters)", ln)
    return ClusterBlock(i, atoms, pairs, False, unique, powers, equiv, param, np.zeros(total))


def _parse_map(text: str, filename: str) -> dict[str, list[tuple[int, str]]]:
    cur = _Cursor(text, filename)
    maps: dict[str, list[tuple[int, str]]] = {}
    while True:
        try:
            ln, _, t = cur.next_nonblank("")
        except ParamsFormatError:
            break
        if len(t) != 2 or t[0] not in ("PAIRMAPS:", "TRIPMAPS:", "QUADMAPS:"):
            cur.error(f"expected 'PAIRMAPS: K', 'TRIPMAPS: K' or 'QUADMAPS: K', found {' '.join(t)!r}", ln)
        name = t[0][:-1]
        if name in maps:
            cur.error(f"second '{name}:' section", ln)
        count = cur.to_int(t[1], ln, f"the number of {name} entries")
        entries = []
        for k in range(count):
            ln2, _, e = cur.next_nonblank(f"{name} entry {k + 1} of {count}")
            if len(e) != 2:
                cur.error(f"expected a {name} entry 'index KEY', found {' '.join(e)!r}", ln2)
            entries.append((cur.to_int(e[0], ln2, f"the {name} index"), e[1]))
        maps[name] = entries
    if "PAIRMAPS" not in maps:
        cur.error("no 'PAIRMAPS:' section: is this an ff_groups.map file?", None)
    return maps


def parse_params_header(header_text: str, map_text: str, filename: str = "params.header",
                        map_filename: str = "ff_groups.map") -> ChimesParams:
    """Read ``params.header`` and ``ff_groups.map`` (as written by ``chimes_lsq``) into a model skeleton.

    Every coefficient of the result is 0.0 (with ``FITCOUL: true`` the charge lines read
    ``q_A x q_B 0.0000000000000e+00``); there are no energy offsets.  The cluster blocks carry the powers,
    ``equiv index`` and ``param index`` of the header and ``UNIQUE`` = the header's "N parameters";
    ``EXCLUDED:`` blocks become ``excluded=True`` blocks with empty tables.  The flag lines are kept as text
    in ``flags`` (``EXCLD1B``/``EXCLD2B`` lists as space-separated indices).

    Raises :class:`ParamsFormatError` naming the file and line for malformed input, and for a header and map
    that do not describe a consistent model.
    """
    cur = _Cursor(header_text, filename)
    flags: dict[str, str] = {}
    orders = None
    cheby_range = (-1.0, 1.0)
    n_types = n_pairs = None
    types: list[AtomType] = []
    pairs: list[PairType] = []
    fcut_type, fcut_var = "CUBIC", None
    pen_d = pen_a = None
    special: dict[tuple[str, str], SpecialCutoffs] = {}
    counts: dict[int, int] = {}
    blocks: dict[int, list[ClusterBlock]] = {3: [], 4: []}
    seen: dict[str, int] = {}

    def once(key: str, ln: int):
        if key in seen:
            cur.error(f"second '{key}' line (first on line {seen[key]})", ln)
        seen[key] = ln

    while cur.pos < len(cur.raw):
        ln = cur.pos + 1
        raw = cur.raw[cur.pos]
        cur.pos += 1
        t = raw.split()
        if not t or raw.lstrip().startswith("!"):
            continue
        if "# TYPEIDX #" in raw:
            once("# TYPEIDX #", ln)
            if n_types is None:
                cur.error("'# TYPEIDX #' table before 'ATOM TYPES: N'", ln)
            for i in range(n_types):
                ln2, _, e = cur.next_nonblank(f"atom type line {i} of {n_types}")
                if len(e) != 4:
                    cur.error(f"expected 'index symbol charge mass' for atom type {i}, found {' '.join(e)!r}", ln2)
                if cur.to_int(e[0], ln2, "the atom type index") != i:
                    cur.error(f"atom type index {e[0]} out of order: expected {i}", ln2)
                if any(e[1] == x.symbol for x in types):
                    cur.error(f"atom type symbol {e[1]!r} given twice", ln2)
                types.append(AtomType(e[1], e[2], cur.to_float(e[3], ln2, "the atom mass")))
            continue
        if "# PAIRIDX #" in raw:
            once("# PAIRIDX #", ln)
            if n_pairs is None:
                cur.error("'# PAIRIDX #' table before 'ATOM PAIRS: M'", ln)
            for i in range(n_pairs):
                ln2, _, e = cur.next_nonblank(f"pair line {i} of {n_pairs}")
                if len(e) not in (7, 8):
                    cur.error(f"expected 'idx A B S_MINIM S_MAXIM [S_DELTA] CHBDIST MORSE_LAMBDA' for pair {i}, "
                              f"found {' '.join(e)!r}", ln2)
                if cur.to_int(e[0], ln2, "the pair index") != i:
                    cur.error(f"pair index {e[0]} out of order: expected {i}", ln2)
                for sym in e[1:3]:
                    if sym not in [x.symbol for x in types]:
                        cur.error(f"pair {i} uses element {sym!r}, which is not an atom type", ln2)
                if e[-2] != "MORSE":
                    cur.error(f"CHBDIST must be MORSE, found {e[-2]!r}", ln2)
                sdelta = cur.to_float(e[5], ln2, "S_DELTA") if len(e) == 8 else None
                pt = PairType(e[1], e[2], cur.to_float(e[3], ln2, "S_MINIM"), cur.to_float(e[4], ln2, "S_MAXIM"),
                              cur.to_float(e[-1], ln2, "MORSE_LAMBDA"), sdelta, e[-2])
                if not 0 <= pt.s_minim <= pt.s_maxim:
                    cur.error(f"pair {pt.name}: need 0 <= S_MINIM <= S_MAXIM, found {pt.s_minim}, {pt.s_maxim}", ln2)
                pairs.append(pt)
            continue
        if raw.startswith("PAIRTYP:"):
            once("PAIRTYP", ln)
            if len(t) < 3 or t[1] != "CHEBYSHEV":
                cur.error("expected 'PAIRTYP: CHEBYSHEV O2B O3B O4B low high'", ln)
            o = [cur.to_int(x, ln, "a polynomial order") for x in t[2:5]]
            o += [0] * (3 - len(o))
            if o[0] < 1 or o[1] < 0 or o[2] < 0:
                cur.error(f"polynomial orders must be O2B >= 1, O3B >= 0, O4B >= 0; found {o}", ln)
            orders = tuple(o)
            if len(t) >= 7:
                cheby_range = (cur.to_float(t[5], ln, "the Chebyshev range"),
                               cur.to_float(t[6], ln, "the Chebyshev range"))
            continue
        if raw.startswith("ATOM TYPES:"):
            once("ATOM TYPES", ln)
            if len(t) != 3:
                cur.error("expected 'ATOM TYPES: N'", ln)
            n_types = cur.to_int(t[2], ln, "the number of atom types")
            if n_types < 1:
                cur.error(f"need at least one atom type, found {n_types}", ln)
            continue
        if raw.startswith("ATOM PAIRS:"):
            once("ATOM PAIRS", ln)
            if len(t) != 3:
                cur.error("expected 'ATOM PAIRS: M'", ln)
            n_pairs = cur.to_int(t[2], ln, "the number of atom pairs")
            if n_types is not None and n_pairs != n_types * (n_types + 1) // 2:
                cur.error(f"'ATOM PAIRS: {n_pairs}' does not match {n_types} atom types", ln)
            continue
        if raw.startswith("FCUT TYPE:"):
            once("FCUT TYPE", ln)
            if len(t) < 3 or t[2] not in ("CUBIC", "TERSOFF") or len(t) != (4 if t[2] == "TERSOFF" else 3):
                cur.error("expected 'FCUT TYPE: CUBIC' or 'FCUT TYPE: TERSOFF <fraction>'", ln)
            fcut_type = t[2]
            if fcut_type == "TERSOFF":
                fcut_var = cur.to_float(t[3], ln, "the Tersoff cutoff fraction")
            continue
        if raw.startswith("PAIR CHEBYSHEV PENALTY DIST:") or raw.startswith("PAIR CHEBYSHEV PENALTY SCALING:"):
            once(t[3], ln)
            if len(t) != 5:
                cur.error(f"expected '{' '.join(t[:4])} value'", ln)
            value = cur.to_float(t[4], ln, "a penalty parameter")
            if t[3] == "DIST:":
                pen_d = value
            else:
                pen_a = value
            continue
        if raw.startswith("SPECIAL "):
            if len(t) != 5 or t[1] not in ("3B", "4B") or t[2] not in ("S_MINIM:", "S_MAXIM:") \
                    or t[3] not in ("SPECIFIC", "ALL"):
                cur.error("expected 'SPECIAL 3B|4B S_MINIM|S_MAXIM: SPECIFIC K' (or ': ALL r')", ln)
            key = (t[1], t[2][:-1])
            once(f"SPECIAL {key[0]} {key[1]}", ln)
            if t[3] == "ALL":
                special[key] = SpecialCutoffs("ALL", cur.to_float(t[4], ln, "the special cutoff"))
                continue
            count = cur.to_int(t[4], ln, "the number of SPECIFIC entries")
            npair = 3 if key[0] == "3B" else 6
            entries = []
            for k in range(count):
                ln2, _, e = cur.next_nonblank(f"SPECIFIC entry {k + 1} of {count}")
                if len(e) != 1 + 2 * npair:
                    cur.error(f"expected 'KEY {npair} pair names {npair} cutoffs', found {' '.join(e)!r}", ln2)
                vals = tuple(cur.to_float(x, ln2, "a special cutoff") for x in e[1 + npair:])
                entries.append((e[0], tuple(e[1:1 + npair]), vals))
            special[key] = SpecialCutoffs("SPECIFIC", entries=entries)
            continue
        if raw.startswith("ATOM PAIR TRIPLETS:") or raw.startswith("ATOM PAIR QUADRUPLETS:"):
            nbody = 3 if t[2] == "TRIPLETS:" else 4
            once(t[2], ln)
            if len(t) != 4:
                cur.error(f"expected 'ATOM PAIR {t[2]} N'", ln)
            if orders is None:
                cur.error(f"'ATOM PAIR {t[2]}' before the PAIRTYP line", ln)
            counts[nbody] = cur.to_int(t[3], ln, f"the number of {nbody}-body cluster types")
            order = orders[nbody - 2]
            if counts[nbody] and not order:
                cur.error(f"{counts[nbody]} {nbody}-body blocks, but PAIRTYP gives no {nbody}-body order", ln)
            blocks[nbody] = [_parse_cluster_block(cur, nbody, i, order) for i in range(counts[nbody])]
            continue
        if orders is None and t[0].endswith(":") and t[0][:-1].isalnum() and t[0][:-1].isupper():
            once(t[0], ln)
            flags[t[0][:-1]] = " ".join(t[1:])
            continue
        cur.error(f"unrecognised line {raw.strip()!r}", ln)

    def need(cond, message):
        if not cond:
            cur.error(message, None)

    need(orders is not None, "no 'PAIRTYP: CHEBYSHEV ...' line: is this a chimes_lsq params.header?")
    need(n_types is not None and len(types) == n_types, "missing 'ATOM TYPES:' line or '# TYPEIDX #' table")
    need(n_pairs is not None and len(pairs) == n_pairs, "missing 'ATOM PAIRS:' line or '# PAIRIDX #' table")
    need(3 in counts, "missing 'ATOM PAIR TRIPLETS:' line")

    maps = _parse_map(map_text, map_filename)
    fitcoul = flags.get("FITCOUL", "false").lower() == "true"
    skeleton = ChimesParams(
        orders=orders, types=types, pairs=pairs,
        pair_powers=[np.arange(orders[0], dtype=np.int64) for _ in pairs],
        pair_coeffs=[np.zeros(orders[0]) for _ in pairs],
        comments=[], flags=flags, cheby_range=cheby_range, fcut_type=fcut_type, fcut_var=fcut_var,
        penalty_dist=pen_d, penalty_scaling=pen_a, special=special,
        pair_charges=[f"q_{q.atom1} x q_{q.atom2} {0.0:.13e}" if fitcoul else None for q in pairs],
        n_triplets=counts.get(3, 0), n_quadruplets=counts.get(4), triplets=blocks[3], quadruplets=blocks[4],
        pairmaps=maps.get("PAIRMAPS", []), tripmaps=maps.get("TRIPMAPS", []), quadmaps=maps.get("QUADMAPS", []),
        energy_offsets=None, source=filename,
    )
    # the full parameter-file checks (map keys, cluster counts, pair names, SPECIAL keys) on the same content
    try:
        parse_params(format_params(skeleton), filename)
    except ParamsFormatError as exc:
        raise ParamsFormatError(filename, None, f"header and {map_filename} do not describe a consistent model: "
                                f"{exc.message}") from exc
    try:
        excluded_pairs(skeleton)
        excluded_types(skeleton)
    except ValueError as exc:
        raise ParamsFormatError(filename, seen.get("EXCLD1B:") or seen.get("EXCLD2B:"), str(exc)) from exc
    return skeleton


def read_params_header(header_path, map_path) -> ChimesParams:
    """Read ``params.header`` and ``ff_groups.map`` files (gzip-compressed when named ``*.gz``)."""
    return parse_params_header(_read_text(header_path), _read_text(map_path), os.fspath(header_path),
                               os.fspath(map_path))


# ===================================================================== params.header / ff_groups.map: writing
def _first_map_keys(p: ChimesParams, nbody: int) -> dict[int, str]:
    """For every cluster index, the key ``chimes_lsq`` names it by (first ordered type tuple that maps to it)."""
    symbols = p.symbols
    out: dict[int, str] = {}
    lookup = dict((k, i) for i, k in (p.tripmaps if nbody == 3 else p.quadmaps))
    for combo in itertools.product(range(len(symbols)), repeat=nbody):
        key = "".join(p.proper_pair_name(symbols[combo[a]], symbols[combo[b]])
                      for a, b in itertools.combinations(range(nbody), 2))
        idx = lookup.get(key)
        if idx is not None and idx >= 0 and idx not in out:
            out[idx] = key
    return out


def _special_entries(p: ChimesParams, body: str, kind: str):
    spec = p.special.get((body, kind))
    if spec is None:
        return []
    if spec.mode == "SPECIFIC":
        return spec.entries
    # chimes_lsq expands "ALL r" into one SPECIFIC line per non-excluded cluster
    nbody = int(body[0])
    keys = _first_map_keys(p, nbody)
    blocks = p.triplets if nbody == 3 else p.quadruplets
    return [(keys.get(b.index, ""), tuple(b.pairs), (float(spec.value),) * len(b.pairs))
            for b in blocks if not b.excluded]


def _header_row(r: int, powers, equiv: int, param: int) -> str:
    pw = "".join(f"{int(x):<2} " for x in powers)
    return f"      {r:<6}  {pw}       {int(equiv):<8}        {int(param):<8}"


def _block_header_lines(b: ClusterBlock, nbody: int) -> list[str]:
    sep = " "
    atoms = sep.join(b.atoms) + (" " if nbody == 4 else "")  # C++ adds a trailing space for 4 atoms
    out = [f" INDEX: {b.index} ATOMS: {atoms}"]
    if b.excluded:
        out.append(f" PAIRS: {' '.join(b.pairs)} EXCLUDED:")
        out.append("")
        return out
    out.append(f" PAIRS: {' '.join(b.pairs)}  {b.unique} parameters, {b.total} total parameters ")
    out.append(_ROW_HEAD)
    out.append(_ROW_DASH)
    for r in range(b.total):
        out.append(_header_row(r, b.powers[r], b.equiv[r], b.param[r]))
    out.append("")
    return out


def _check_unique(b: ClusterBlock, kind: str) -> None:
    if not b.excluded and b.unique < 0:
        raise ValueError(f"{kind} block {b.index} has UNIQUE {b.unique} (a .reduced file?): its column layout "
                         f"is unknown")


def _header_lines(p: ChimesParams, exact_numbers: bool = False) -> list[str]:
    out: list[str] = []
    w = out.append

    def num(x: float) -> str:  # C++ default stream output; repr() where that would round (exact_numbers)
        text = _g(x)
        return repr(float(x)) if exact_numbers and float(text) != float(x) else text

    def cut(x: float) -> str:
        text = f"{x:.5f}"
        return repr(float(x)) if exact_numbers and float(text) != float(x) else text

    def col(text: str) -> str:  # setw(16) << left, but never glued to the next field
        return f"{text:<16}" if len(text) < 16 else text + " "
    for k, v in p.flags.items():
        if k in _LIST_FLAGS and v.strip().lower() not in ("", "false"):
            w(f"{k}: " + "".join(f"{tok} " for tok in v.split()))
        else:
            w(f"{k}: {v}")
    w("")
    lo, hi = p.cheby_range
    w(f"PAIRTYP: CHEBYSHEV  {p.orders[0]} {p.orders[1]} {p.orders[2]} {num(lo)} {num(hi)}")
    w("")
    w(f"ATOM TYPES: {len(p.types)}")
    w("")
    w("# TYPEIDX #\t# ATM_TYP #\t# ATMCHRG #\t# ATMMASS #")
    for i, t in enumerate(p.types):
        w(f"{i}\t\t{t.symbol}\t\t{t.charge}\t\t{num(t.mass)}")
    w("")
    w(f"ATOM PAIRS: {len(p.pairs)}")
    w("")
    w("# PAIRIDX #\t# ATM_TY1 #\t# ATM_TY1 #\t# S_MINIM #\t# S_MAXIM #\t# CHBDIST #\t# MORSE_LAMBDA #")
    for i, q in enumerate(p.pairs):
        w("\t" + "".join(col(s) for s in (str(i), q.atom1, q.atom2, num(q.s_minim), num(q.s_maxim),
                                            q.chbdist, num(q.morse_lambda))))
    w("")
    w(f"FCUT TYPE: {p.fcut_type}" + (f" {num(p.fcut_var)}" if p.fcut_type == "TERSOFF" else ""))
    if p.penalty_dist is not None or p.penalty_scaling is not None:
        # not written by chimes_lsq; kept so that the solved parameter file carries them
        w("")
        if p.penalty_dist is not None:
            w(f"PAIR CHEBYSHEV PENALTY DIST: {float(p.penalty_dist)!r}")
        if p.penalty_scaling is not None:
            w(f"PAIR CHEBYSHEV PENALTY SCALING: {float(p.penalty_scaling)!r}")
    for body in ("3B", "4B"):
        for kind in ("S_MINIM", "S_MAXIM"):
            entries = _special_entries(p, body, kind)
            if not entries:
                continue
            w("")
            w(f"SPECIAL {body} {kind}: SPECIFIC {len(entries)}")
            for key, names, vals in entries:
                w(f"{key} " + "".join(f"{n} " for n in names) + "".join(f"{cut(v)} " for v in vals))
    for nbody, blocks, count in ((3, p.triplets, p.n_triplets), (4, p.quadruplets, p.n_quadruplets or 0)):
        w("")
        if not p.orders[nbody - 2] or not count:
            w(f"ATOM PAIR {_TUPLET[nbody]}: 0")
            continue
        w(f"ATOM PAIR {_TUPLET[nbody]}: {len(blocks)}")
        w("")
        for b in blocks:
            _check_unique(b, _TUPLET[nbody])
            out.extend(_block_header_lines(b, nbody))
    w("")
    return out


def with_header_flags(p: ChimesParams) -> ChimesParams:
    """A copy of ``p`` whose flags are exactly the six lines ``chimes_lsq`` writes, in its order.

    Values the model has are kept; missing ones get ``chimes_lsq``'s meaning: ``FITCOUL false``, ``USECOUL``
    as ``FITCOUL``, ``USE3BCH``/``USE4BCH`` from the 3-/4-body orders, ``EXCLD1B``/``EXCLD2B false``.  Other
    flags (``USEPOVR`` ...) are dropped: ``chimes_lsq.py`` finds the header lines by position and needs
    exactly these six before the ``PAIRTYP`` line.
    """
    old = p.flags
    fitcoul = old.get("FITCOUL", "false")
    defaults = {"USECOUL": fitcoul, "FITCOUL": fitcoul,
                "USE3BCH": "true" if p.orders[1] else "false", "USE4BCH": "true" if p.orders[2] else "false",
                "EXCLD1B": "false", "EXCLD2B": "false"}
    out = copy.deepcopy(p)
    out.flags = {k: old.get(k, v) for k, v in defaults.items()}
    return out


def format_params_header(p: ChimesParams, exact_numbers: bool = False) -> str:
    """The ``params.header`` text ``chimes_lsq`` writes for this model (``print_param_header``).

    Numbers are written as C++ streams them by default (``%g``: 6 significant digits), as ``chimes_lsq``
    does; ``SPECIAL ... ALL r`` settings are expanded to one ``SPECIFIC`` line per non-excluded cluster.
    Penalty lines (``PAIR CHEBYSHEV PENALTY ...``), which ``chimes_lsq`` does not write, are written after
    the ``FCUT TYPE`` line when the model has them.  The flag lines are the model's (so older files with
    four flags round-trip); use :func:`with_header_flags` for a header the official ``chimes_lsq.py`` reads.
    Coefficient values, energy offsets, ``S_DELTA`` and legacy lines are not part of a header; values that
    need more than 6 significant digits are rounded, as ``chimes_lsq`` rounds them, unless
    ``exact_numbers=True`` (then such values, and ``SPECIAL`` cutoffs with more than 5 decimals, are written
    with ``repr`` so that they read back exactly; files with only short numbers are unchanged).
    """
    return "\n".join(_header_lines(p, exact_numbers)) + "\n"


def _sorted_map(entries: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted(entries, key=lambda e: e[1])  # std::map<string,int> order


def format_ff_groups_map(p: ChimesParams) -> str:
    """The ``ff_groups.map`` text ``chimes_lsq`` writes (``print_map_file``; entries in ``std::map`` order)."""
    out = [f"PAIRMAPS: {len(p.pairmaps)}"] + [f"{i} {k}" for i, k in _sorted_map(p.pairmaps)]
    for name, entries in (("TRIPMAPS", p.tripmaps), ("QUADMAPS", p.quadmaps)):
        if entries:
            out += ["", f"{name}: {len(entries)}"] + [f"{i} {k}" for i, k in _sorted_map(entries)]
    return "\n".join(out) + "\n"


# ===================================================================== coefficient vector <-> model
def _layout(p: ChimesParams):
    """(pair indices with columns, [(block, offset)] for 3-body then 4-body, end of the cluster columns)."""
    excl2 = set(excluded_pairs(p))
    pair_idx = [i for i in range(len(p.pairs)) if i not in excl2]
    offset = len(pair_idx) * p.orders[0]
    blocks = []
    for kind, blist in (("TRIPLET", p.triplets), ("QUADRUPLET", p.quadruplets)):
        for b in blist:
            if b.excluded:
                continue
            _check_unique(b, kind)
            blocks.append((b, offset))
            offset += b.unique
    return pair_idx, blocks, offset


def n_columns(p: ChimesParams, fit_energy: bool) -> int:
    """Number of design-matrix columns (= length of the coefficient vector) for this model.

    Non-excluded pairs x O2B + the ``UNIQUE`` counts of the non-excluded 3- and 4-body blocks + one per pair
    with ``FITCOUL: true`` + one per non-excluded atom type when energies are fitted.
    """
    _, _, n = _layout(p)
    if fits_charges(p):
        n += len(p.pairs)
    if fit_energy:
        n += len(p.types) - len(excluded_types(p))
    return n


def column_labels(p: ChimesParams, fit_energy: bool) -> list[str]:
    """One readable label per column: ``2B CN n=3``, ``3B[1] CCN param 17``, ``4B[2] CCNN param 5``,
    ``Q CN`` (charge product), ``E0 C`` (energy offset)."""
    pair_idx, blocks, _ = _layout(p)
    labels = [f"2B {p.pairs[i].name} n={n}" for i in pair_idx for n in range(p.orders[0])]
    for b, _ in blocks:
        tag = f"{len(b.atoms)}B[{b.index}] {''.join(b.atoms)}"
        labels += [f"{tag} param {k}" for k in range(b.unique)]
    if fits_charges(p):
        labels += [f"Q {q.name}" for q in p.pairs]
    if fit_energy:
        excl1 = set(excluded_types(p))
        labels += [f"E0 {t.symbol}" for i, t in enumerate(p.types) if i not in excl1]
    return labels


def fill_coefficients(p: ChimesParams, x, fit_energy: bool | None = None) -> ChimesParams:
    """A new model: the skeleton ``p`` with the coefficients of solution vector ``x`` put in place.

    The mapping is that of ``chimes_lsq.py``: ``x[k*O2B + n]`` for the k-th non-excluded pair (excluded
    pairs get 0.0); then, per non-excluded triplet block, ``x[offset + param_index]`` for every row; then
    the quadruplets; then (``FITCOUL``) one charge product per pair; then, if ``x`` holds them (or
    ``fit_energy`` says so), the energy offsets of the non-excluded types (excluded types get 0.0).
    Raises ``ValueError`` when ``len(x)`` fits neither layout.
    """
    x = np.asarray(x, dtype=float).ravel()
    n_no, n_yes = n_columns(p, False), n_columns(p, True)
    if fit_energy is None:
        if len(x) == n_no:
            fit_energy = False
        elif len(x) == n_yes:
            fit_energy = True
        else:
            raise ValueError(f"coefficient vector of length {len(x)}: this model needs {n_no} entries "
                             f"(or {n_yes} with energy offsets)")
    elif len(x) != (n_yes if fit_energy else n_no):
        raise ValueError(f"coefficient vector of length {len(x)}: this model needs "
                         f"{n_yes if fit_energy else n_no} entries (fit_energy={fit_energy})")
    out = copy.deepcopy(p)
    pair_idx, blocks, offset = _layout(out)
    o2b = out.orders[0]
    out.pair_powers = [np.arange(o2b, dtype=np.int64) for _ in out.pairs]
    out.pair_coeffs = [np.zeros(o2b) for _ in out.pairs]
    for k, i in enumerate(pair_idx):
        out.pair_coeffs[i] = x[k * o2b:(k + 1) * o2b].copy()
    for b, start in blocks:
        b.values = x[start + b.param].astype(float)
    if fits_charges(out):
        out.pair_charges = [f"q_{q.atom1} x q_{q.atom2} {float(x[offset + i]):.13e}" for i, q in enumerate(out.pairs)]
        offset += len(out.pairs)
    elif len(out.pair_charges) != len(out.pairs):
        out.pair_charges = [None] * len(out.pairs)
    if fit_energy:
        excl1 = set(excluded_types(out))
        offsets = np.zeros(len(out.types))
        k = offset
        for i in range(len(out.types)):
            if i not in excl1:
                offsets[i] = x[k]
                k += 1
        out.energy_offsets = offsets
    else:
        out.energy_offsets = None
    return out


# ===================================================================== solved params.txt
def _charge_value(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(text.split()[-1])
    except ValueError as exc:
        raise ValueError(f"charge line {text!r} does not end with a number") from exc


def format_solved_params(p_filled: ChimesParams, comments: Sequence[str] | None = None, digits: int = 13,
                         exact_numbers: bool = False) -> str:
    """The ``params.txt`` that ``chimes_lsq.py`` prints for a solved model.

    ``comments`` are the leading ``!`` lines (see :func:`solver_comment_lines`; an empty string gives an
    empty line, as after the ``DLARS run`` line); ``None`` uses ``p_filled.comments``.  Then come the header
    lines up to ``ATOM PAIR TRIPLETS`` and the ``ATOM PAIR QUADRUPLETS`` line, the 2-body blocks (with the
    ``q_A x q_B`` charge lines when the model has them), the 3- and 4-body blocks in ``UNIQUE:/TOTAL:`` form,
    the map file, the energy offsets and ``ENDFILE``.  Numbers are written ``%21.13e`` as ``chimes_lsq.py``
    does; ``digits=16`` writes ``%24.16e``, which reads back to exactly the same doubles.  ``exact_numbers``
    is passed to the header writer (see :func:`format_params_header`).
    """
    fmt = f"%{digits + 8}.{digits}e"
    out: list[str] = list(p_filled.comments if comments is None else comments)
    w = out.append
    head = _header_lines(p_filled, exact_numbers)
    # chimes_lsq.py echoes the header up to the triplet count, then only the quadruplet count line
    for line in head:
        w(line)
        if line.startswith("ATOM PAIR TRIPLETS:"):
            break
    w(next(line for line in head if line.startswith("ATOM PAIR QUADRUPLETS:")))
    w("")
    w("PAIR CHEBYSHEV PARAMS ")
    w("")
    for i, q in enumerate(p_filled.pairs):
        w(f"PAIRTYPE PARAMS: {i} {q.atom1} {q.atom2}")
        w("")
        for n, c in enumerate(p_filled.pair_coeffs[i]):
            w(("%3d " + fmt) % (n, float(c)))
        if p_filled.pair_charges and i < len(p_filled.pair_charges) and p_filled.pair_charges[i]:
            w(("q_%s x q_%s " + fmt) % (q.atom1, q.atom2, _charge_value(p_filled.pair_charges[i])))
        w(" ")
    for nbody, kind, blocks in ((3, "TRIPLET", p_filled.triplets), (4, "QUADRUPLET", p_filled.quadruplets)):
        if not blocks or not p_filled.orders[nbody - 2]:
            continue
        w(f"{kind} CHEBYSHEV PARAMS ")
        w("")
        for b in blocks:
            hdr = _block_header_lines(b, nbody)
            w("TRIPLETTYPE PARAMS:" if nbody == 3 else "QUADRUPLETYPE PARAMS: ")
            w(("  " + hdr[0]).rstrip())
            if b.excluded:
                w(f"   PAIRS: {' '.join(b.pairs)} EXCLUDED:" + (" " if nbody == 4 else ""))
            else:
                _check_unique(b, kind)
                w(f"   PAIRS: {' '.join(b.pairs)} UNIQUE: {b.unique} TOTAL: {b.total}")
                w(_PAR_HEAD)
                w(_PAR_DASH)
                for r in range(b.total):
                    w(_header_row(r, b.powers[r], b.equiv[r], b.param[r]) + " " + fmt % float(b.values[r]))
            w("")
    w("")
    out.extend(format_ff_groups_map(p_filled).splitlines())
    w("")
    if p_filled.energy_offsets is not None:
        w(f"NO ENERGY OFFSETS:  {len(p_filled.energy_offsets)}")
        for i, e in enumerate(p_filled.energy_offsets):
            w(("ENERGY OFFSET %d " + fmt) % (i + 1, float(e)))
    w("ENDFILE")
    return "\n".join(out) + "\n"


_SOLVER_LINES = {
    # algorithm: (description line, parameter line format)
    "svd": ("! svd algorithm used", "! SVD regularization factor      = %11.4e"),
    "ridge": ("! ridge regression used", "! Ridge alpha = %11.4e"),
    "ridgecv": ("! ridge CV regression used", "! ridge CV alpha = %11.4e"),
    "lasso": ("! Lasso regression used", "! Lasso alpha = %11.4e"),
    "lassolars": ("! LARS implementation of LASSO used", "! LASSO alpha = %11.4e"),
    "dlasso": ("! DLARS code for LASSO used", "! DLARS alpha = %10.4e"),
    "dlars": ("! DLARS code for LARS used", "! DLARS alpha = %10.4e"),
}


def solver_comment_lines(nvars, nequations, algorithm, parameter, rmse, max_abs, nonzero, bic, date=None,
                         weights_file=None, eps_abs=None, *, dlars_command=None, read_output=False,
                         rmse_label="RMSE") -> list[str]:
    """The ``!`` log lines ``chimes_lsq.py`` prints at the top of ``params.txt``.

    ``nvars``: number of columns (``None`` omits the line, as in DLARS read-back runs); ``nequations``: rows;
    ``algorithm``: ``svd``, ``ridge``, ``ridgecv``, ``lasso``, ``lassolars``, ``dlasso`` or ``dlars``;
    ``parameter``: the relative ``eps`` (svd) or ``alpha``; ``eps_abs``: the absolute singular-value cutoff
    (svd only, ``eps * max singular value``); ``nonzero``: the "number of fitting vars"; ``date``: a
    ``datetime.date`` or text (default today).  For DLARS runs ``dlars_command`` adds the ``! DLARS run:``
    line (followed by an empty line, as the solver prints it) and ``read_output`` the read-back line.
    ``rmse_label`` is ``RMSE`` (current solver) or ``RMS force error`` (older solver versions).
    """
    algorithm = algorithm.lower()
    if algorithm not in _SOLVER_LINES:
        raise ValueError(f"unknown solver algorithm {algorithm!r}; known: {', '.join(_SOLVER_LINES)}")
    if date is None:
        date = datetime.date.today()
    out = [f"! Date  {date}", "!"]
    if nvars is not None:
        out.append(f"! Number of variables            =  {int(nvars)}")
    out.append(f"! Number of equations            =  {int(nequations)}")
    describe, param_fmt = _SOLVER_LINES[algorithm]
    out.append(describe)
    if algorithm == "svd":
        if eps_abs is None:
            raise ValueError("svd comment lines need eps_abs (eps * largest singular value)")
        out.append(f"! eps (= args.eps*dmax)          =  {eps_abs:11.4e}")
        out.append(param_fmt % parameter)
    else:
        out.append(param_fmt % parameter)
        if algorithm in ("dlasso", "dlars"):
            if read_output:
                out.append("! Reading output from prior DLARS calculation")
            elif dlars_command:
                out += [f"! DLARS run: {dlars_command}", ""]
    out.append(f"! {rmse_label:<31}= {rmse:11.4e}")
    out.append(f"! max abs variable               = {max_abs:11.4e}")
    out.append(f"! number of fitting vars         =  {int(nonzero)}")
    out.append(f"! Bayesian Information Criterion = {bic:11.4e}")
    if weights_file is not None:
        out.append(f"! Using weighting file:             {weights_file}")
    out.append("!")
    return out


# ===================================================================== small numeric files
def _read_columns(path, what: str) -> list[list[str]]:
    text = _read_text(path)
    return [line.split() for line in text.splitlines() if line.strip()]


def write_test_suite_params(path, x) -> None:
    """``test_suite_params.txt``: ``%5d %21.13e`` (index, value) per coefficient."""
    with _open_write(path) as fh:
        fh.writelines(f"{i:5d} {v:21.13e}\n" for i, v in enumerate(np.asarray(x, dtype=float).ravel()))


def read_test_suite_params(path) -> np.ndarray:
    rows = _read_columns(path, "test_suite_params")
    out = np.empty(len(rows))
    for k, row in enumerate(rows):
        if len(row) != 2 or row[0] != str(k):
            raise ParamsFormatError(os.fspath(path), k + 1, f"expected '{k} value', found {' '.join(row)!r}")
        out[k] = float(row[1])
    return out


def _write_vector(path, values, fmt: str) -> None:
    with _open_write(path) as fh:
        fh.writelines(fmt % v for v in np.asarray(values, dtype=float).ravel())


def _read_vector(path) -> np.ndarray:
    rows = _read_columns(path, "vector")
    out = np.empty(len(rows))
    for k, row in enumerate(rows):
        if len(row) != 1:
            raise ParamsFormatError(os.fspath(path), k + 1, f"expected one number, found {' '.join(row)!r}")
        try:
            out[k] = float(row[0])
        except ValueError:
            raise ParamsFormatError(os.fspath(path), k + 1, f"expected a number, found {row[0]!r}") from None
    return out


def write_force_txt(path, y) -> None:
    """``force.txt`` (the fitted A x), ``%13.6e`` per line as ``chimes_lsq.py`` writes it."""
    _write_vector(path, y, "%13.6e\n")


def read_force_txt(path) -> np.ndarray:
    return _read_vector(path)


def write_b_txt(path, b) -> None:
    """``b.txt``: one target per line, ``%.16e`` (C++ ``scientific``, precision 16)."""
    _write_vector(path, b, "%.16e\n")


def read_b_txt(path) -> np.ndarray:
    return _read_vector(path)


def write_b_labeled(path, labels: Sequence[str], b) -> None:
    """``b-labeled.txt``: ``<label> <value>`` with the value as C++ streams it by default (``%g``)."""
    b = np.asarray(b, dtype=float).ravel()
    if len(labels) != len(b):
        raise ValueError(f"{len(labels)} labels for {len(b)} values")
    with _open_write(path) as fh:
        fh.writelines(f"{lab} {_g(v)}\n" for lab, v in zip(labels, b, strict=True))


def read_b_labeled(path) -> tuple[list[str], np.ndarray]:
    rows = _read_columns(path, "b-labeled")
    labels, values = [], np.empty(len(rows))
    for k, row in enumerate(rows):
        if len(row) != 2:
            raise ParamsFormatError(os.fspath(path), k + 1, f"expected 'label value', found {' '.join(row)!r}")
        labels.append(row[0])
        values[k] = float(row[1])
    return labels, values


def write_natoms_txt(path, natoms) -> None:
    """``natoms.txt``: the atom count of the frame of every row, one integer per line."""
    with _open_write(path) as fh:
        fh.writelines(f"{int(n)}\n" for n in np.asarray(natoms).ravel())


def read_natoms_txt(path) -> np.ndarray:
    return _read_vector(path).astype(np.int64)


def write_dim_txt(path, ncols: int, nrows: int) -> None:
    """``dim.txt``: ``ncols nrows``."""
    with _open_write(path) as fh:
        fh.write(f"{int(ncols)} {int(nrows)}\n")


def read_dim_txt(path) -> tuple[int, int]:
    """(ncols, nrows) from ``dim.txt``; for the split-file form ``ncols first last total`` (``dim.XXXX.txt``)
    the total number of rows is returned."""
    rows = _read_columns(path, "dim")
    if len(rows) != 1 or len(rows[0]) not in (2, 4):
        raise ParamsFormatError(os.fspath(path), 1, "expected 'ncols nrows' (or 'ncols first last total')")
    vals = [int(t) for t in rows[0]]
    return vals[0], vals[-1]


def write_A(path, A, text: bool = False, row_kinds: Sequence[str] | None = None, energy_cols: int = 0) -> None:
    """Write a design matrix: binary ``.npy`` content by default (whatever the file name), or, with
    ``text=True``, ``chimes_lsq``'s ``A.txt`` layout (gzip-compressed when the name ends in ``.gz``).

    In the text layout each value is ``%.16e``; force rows (``row_kinds`` entry ``"F"``, the default for
    every row) follow each value with 3 spaces, stress/energy rows (``"S"``/``"E"``) with 1 space.  The last
    ``energy_cols`` columns are written as ``chimes_lsq``'s ``add_col_of_ones`` does: `` 0.0`` in force and
    stress rows and the integer atom count in energy rows.
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"A must be 2-dimensional, found shape {A.shape}")
    if not text:
        with open(os.fspath(path), "wb") as fh:
            np.save(fh, A)
        return
    kinds = ["F"] * A.shape[0] if row_kinds is None else list(row_kinds)
    if len(kinds) != A.shape[0]:
        raise ValueError(f"{len(kinds)} row kinds for {A.shape[0]} rows")
    nmain = A.shape[1] - energy_cols
    with _open_write(path) as fh:
        for row, kind in zip(A, kinds, strict=True):
            sep = "   " if kind == "F" else " "
            line = "".join(f"{v:.16e}{sep}" for v in row[:nmain])
            if energy_cols:
                if kind == "E":
                    line += "".join(f" {int(round(v))}" for v in row[nmain:])
                else:
                    line += " 0.0" * energy_cols
            fh.write(line + "\n")


def read_A(path) -> np.ndarray:
    """Read a design matrix written by :func:`write_A`: ``.npy`` content (detected by its magic bytes), or
    ``chimes_lsq``'s text ``A.txt`` (plain or gzip-compressed)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        return np.load(path)
    opener = gzip.open if magic[:2] == b"\x1f\x8b" else open
    with opener(path, "rt") as fh:
        return np.loadtxt(fh, ndmin=2)
