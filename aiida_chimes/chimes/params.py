"""ChIMES parameter files (``params.txt``, ``params.txt.reduced``): a typed model, reader and writer.

The format is the one read by the official ``chimes_calculator`` (``chimesFF.cpp read_parameters``) and
written by ``chimes_lsq.py`` / ``post_proc_chimes_lsq.py``.  Reading then writing a file gives a file that
parses to the identical model.  Any malformed input raises :class:`ParamsFormatError` naming the file, the
line and what was expected.
"""

from __future__ import annotations

import gzip
import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np

#: Default penalty parameters when a file has no penalty lines (chimesFF.cpp constructor).
DEFAULT_PENALTY_DIST = 0.01
DEFAULT_PENALTY_SCALING = 1.0e4

BODY_KEYS = ("3B", "4B")
SPECIAL_KINDS = ("S_MINIM", "S_MAXIM")
#: Header lines of older files that the official calculator ignores; kept verbatim on round trips.
LEGACY_KEYS = ("PAIR CHEBYSHEV CUBIC SCALING:",)


class ParamsFormatError(ValueError):
    """A ChIMES parameter file that cannot be read: says which file, which line and what was expected."""

    def __init__(self, filename: str, lineno: int | None, message: str):
        self.filename = filename
        self.lineno = lineno
        self.message = message
        where = f"{filename}:{lineno}" if lineno else f"{filename}"
        super().__init__(f"{where}: {message}")


@dataclass
class AtomType:
    symbol: str
    charge: str  # kept as text: FITCOUL files hold a sign (+/-) here
    mass: float


@dataclass
class PairType:
    atom1: str
    atom2: str
    s_minim: float
    s_maxim: float
    morse_lambda: float
    s_delta: float | None = None  # only in 8-token ("version 1") pair lines
    chbdist: str = "MORSE"

    @property
    def name(self) -> str:
        return self.atom1 + self.atom2


@dataclass
class SpecialCutoffs:
    """A ``SPECIAL 3B/4B S_MINIM/S_MAXIM`` setting: ``ALL r`` or ``SPECIFIC`` (key, pair names, values) lines."""

    mode: str  # "ALL" or "SPECIFIC"
    value: float | None = None
    entries: list[tuple[str, tuple[str, ...], tuple[float, ...]]] = field(default_factory=list)


@dataclass
class ClusterBlock:
    """One TRIPLETTYPE or QUADRUPLETYPE block: atoms sorted as in the file, pair names, coefficient rows."""

    index: int
    atoms: tuple[str, ...]
    pairs: tuple[str, ...]
    excluded: bool
    unique: int
    powers: np.ndarray  # (nrows, npairs) int
    equiv: np.ndarray  # (nrows,) int
    param: np.ndarray  # (nrows,) int
    values: np.ndarray  # (nrows,) float

    @property
    def total(self) -> int:
        return int(self.powers.shape[0])


@dataclass
class ChimesParams:
    """Complete content of a ChIMES parameter file."""

    orders: tuple[int, int, int]
    types: list[AtomType]
    pairs: list[PairType]
    pair_powers: list[np.ndarray]
    pair_coeffs: list[np.ndarray]
    comments: list[str] = field(default_factory=list)
    flags: dict[str, str] = field(default_factory=dict)
    cheby_range: tuple[float, float] = (-1.0, 1.0)
    fcut_type: str = "CUBIC"
    fcut_var: float | None = None
    penalty_dist: float | None = None
    penalty_scaling: float | None = None
    special: dict[tuple[str, str], SpecialCutoffs] = field(default_factory=dict)
    pair_charges: list[str | None] = field(default_factory=list)  # FITCOUL "q_A x q_B value" lines
    legacy_lines: list[str] = field(default_factory=list)  # e.g. "PAIR CHEBYSHEV CUBIC SCALING: 1.0" (ignored)
    n_triplets: int = 0
    n_quadruplets: int | None = None
    triplets: list[ClusterBlock] = field(default_factory=list)
    quadruplets: list[ClusterBlock] = field(default_factory=list)
    pairmaps: list[tuple[int, str]] = field(default_factory=list)
    tripmaps: list[tuple[int, str]] = field(default_factory=list)
    quadmaps: list[tuple[int, str]] = field(default_factory=list)
    energy_offsets: np.ndarray | None = None
    source: str = "<params>"

    # ----------------------------------------------------------------- convenience views
    @property
    def symbols(self) -> list[str]:
        return [t.symbol for t in self.types]

    @property
    def penalty(self) -> tuple[float, float]:
        """(distance, scaling) of the 2-body penalty, with the official defaults when the file has none."""
        d = DEFAULT_PENALTY_DIST if self.penalty_dist is None else self.penalty_dist
        a = DEFAULT_PENALTY_SCALING if self.penalty_scaling is None else self.penalty_scaling
        return d, a

    def pair_index(self, a: str, b: str) -> int:
        for i, p in enumerate(self.pairs):
            if (p.atom1, p.atom2) in ((a, b), (b, a)):
                return i
        raise KeyError(f"no pair type for {a}-{b}")

    def proper_pair_name(self, a: str, b: str) -> str:
        return self.pairs[self.pair_index(a, b)].name

    @property
    def max_cutoff(self) -> float:
        return max(p.s_maxim for p in self.pairs)

    def flag(self, name: str) -> bool:
        """A ``NAME: true/false`` header flag (USECOUL, FITCOUL, ...); absent means false."""
        return self.flags.get(name, "false").strip().lower() == "true"

    @property
    def charge_products(self) -> np.ndarray | None:
        """Fitted charge products q_A q_B per pair type (FITCOUL true), None otherwise.

        chimes_lsq fits them with Ewald columns computed with ke = 1, so they carry ke and the units of the fit
        (kcal/mol A for forces in kcal/mol/A): the Coulomb energy is sum_p qq_p E_p with E_p the Ewald energy of
        pair type p per unit charge product.
        """
        if not self.flag("FITCOUL"):
            return None
        missing = [q.name for q, line in zip(self.pairs, self.pair_charges or [None] * len(self.pairs),
                                             strict=True) if not line]
        if missing:
            raise ValueError(f"{self.source}: FITCOUL true but no 'q_A x q_B value' line for pair type(s) "
                             f"{', '.join(missing)}")
        return np.array([float(line.split()[-1]) for line in self.pair_charges])

    # ----------------------------------------------------------------- comparison
    def same_model(self, other: ChimesParams) -> bool:
        """True when both describe the same model (everything but comments and file name)."""
        return _canonical(self) == _canonical(other)

    # ----------------------------------------------------------------- I/O
    @classmethod
    def from_file(cls, path) -> ChimesParams:
        return read_params(path)

    @classmethod
    def from_string(cls, text: str, filename: str = "<string>") -> ChimesParams:
        return parse_params(text, filename)

    def to_string(self) -> str:
        return format_params(self)

    def write(self, path) -> None:
        with open(path, "w") as handle:
            handle.write(self.to_string())


def _canonical(p: ChimesParams):
    def arr(a):
        return None if a is None else (a.shape, a.dtype.kind, a.tobytes())

    def block(b: ClusterBlock):
        return (
            b.index, b.atoms, b.pairs, b.excluded, b.unique,
            arr(b.powers), arr(b.equiv), arr(b.param), arr(b.values),
        )

    special = {
        k: (v.mode, v.value, tuple(v.entries)) for k, v in sorted(p.special.items())
    }
    return (
        p.orders, p.cheby_range,
        tuple((t.symbol, t.charge, t.mass) for t in p.types),
        tuple((q.atom1, q.atom2, q.s_minim, q.s_maxim, q.morse_lambda, q.s_delta, q.chbdist) for q in p.pairs),
        tuple(arr(np.asarray(x)) for x in p.pair_powers),
        tuple(arr(np.asarray(x)) for x in p.pair_coeffs),
        tuple(p.flags.items()), p.fcut_type, p.fcut_var, p.penalty_dist, p.penalty_scaling,
        tuple(special.items()), tuple(p.pair_charges), tuple(p.legacy_lines), p.n_triplets, p.n_quadruplets,
        tuple(block(b) for b in p.triplets), tuple(block(b) for b in p.quadruplets),
        tuple(p.pairmaps), tuple(p.tripmaps), tuple(p.quadmaps), arr(p.energy_offsets),
    )


# ===================================================================== reading
def read_params(path) -> ChimesParams:
    """Read a ChIMES parameter file (``params.txt``, ``.reduced``; gzip-compressed when named ``*.gz``)."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt") as handle:
            text = handle.read()
    except OSError as exc:
        raise ParamsFormatError(path, None, f"cannot open parameter file ({exc.strerror})") from exc
    return parse_params(text, path)


def _strip(line: str) -> str:
    """Remove ``!`` and ``##`` comments, as the official reader does."""
    for marker in ("!", "##"):
        pos = line.find(marker)
        if pos >= 0:
            line = line[:pos]
    return line


class _Lines:
    """Cursor over the lines of a file with helpers that raise located errors."""

    def __init__(self, text: str, filename: str):
        self.raw = text.splitlines()
        self.filename = filename
        self.pos = 0
        end = len(self.raw)
        for i, line in enumerate(self.raw):
            if "ENDFILE" in _strip(line):
                end = i
                break
        else:
            self.end_missing = True
        self.end = end
        self.end_missing = end == len(self.raw)

    def error(self, message: str, lineno: int | None | str = "current"):
        if lineno == "current":
            lineno = min(self.pos, len(self.raw)) or None
        raise ParamsFormatError(self.filename, lineno, message)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def next_nonblank(self, what: str) -> tuple[int, str, list[str]]:
        """Next line with tokens (after comments are stripped); error naming ``what`` at the end of file."""
        while self.pos < self.end:
            line = self.raw[self.pos]
            self.pos += 1
            toks = _strip(line).split()
            if toks:
                return self.pos, line, toks
        self.error(f"unexpected end of file: expected {what}", lineno=self.end + 1)

    def peek_nonblank(self) -> tuple[int, str, list[str]] | None:
        save = self.pos
        try:
            while self.pos < self.end:
                line = self.raw[self.pos]
                self.pos += 1
                toks = _strip(line).split()
                if toks:
                    return self.pos, line, toks
            return None
        finally:
            self.pos = save


def _to_int(lines: _Lines, tok: str, lineno: int, what: str) -> int:
    try:
        value = int(tok)
    except ValueError:
        lines.error(f"expected an integer for {what}, found {tok!r}", lineno)
    if abs(value) >= 2**31:
        lines.error(f"{what} {tok} is out of range", lineno)
    return value


def _to_float(lines: _Lines, tok: str, lineno: int, what: str) -> float:
    try:
        value = float(tok)
    except ValueError:
        lines.error(f"expected a number for {what}, found {tok!r}", lineno)
    if not math.isfinite(value):
        lines.error(f"{what} must be finite, found {tok!r}", lineno)
    return value


def _expect_tokens(lines: _Lines, toks: list[str], n: int | tuple[int, ...], lineno: int, what: str):
    allowed = (n,) if isinstance(n, int) else n
    if len(toks) not in allowed:
        counts = " or ".join(str(a) for a in allowed)
        lines.error(f"expected {counts} fields in {what}, found {len(toks)}: {' '.join(toks)!r}", lineno)


def _split_pair_names(key: str, names: list[str]) -> list[str] | None:
    """Split a concatenated map key into proper pair names (greedy with backtracking)."""
    if not key:
        return []
    for name in sorted(set(names), key=len, reverse=True):
        if key.startswith(name):
            rest = _split_pair_names(key[len(name):], names)
            if rest is not None:
                return [name, *rest]
    return None


def parse_params(text: str, filename: str = "<string>") -> ChimesParams:
    """Parse the text of a ChIMES parameter file."""
    lines = _Lines(text, filename)
    if lines.end_missing:
        lines.error("no ENDFILE line: the file is truncated or is not a ChIMES parameter file",
                    lineno=len(lines.raw) or None)

    comments: list[str] = []
    flags: dict[str, str] = {}
    orders = None
    cheby_range = (-1.0, 1.0)
    n_types = None
    types: list[AtomType] = []
    n_pairs = None
    pairs: list[PairType] = []
    fcut_type, fcut_var = "CUBIC", None
    pen_d = pen_a = None
    special: dict[tuple[str, str], SpecialCutoffs] = {}
    n_trip = 0
    n_quad = None
    pair_powers: list[np.ndarray] = []
    pair_coeffs: list[np.ndarray] = []
    pair_charges: list[str | None] = []
    triplets: list[ClusterBlock] = []
    quads: list[ClusterBlock] = []
    maps: dict[str, list[tuple[int, str]]] = {}
    offsets = None
    seen_line: dict[str, int] = {}
    legacy: list[str] = []

    # leading comment block (solver log)
    while lines.pos < lines.end and (lines.raw[lines.pos].lstrip().startswith("!")
                                     or not lines.raw[lines.pos].strip()):
        if lines.raw[lines.pos].lstrip().startswith("!"):
            comments.append(lines.raw[lines.pos].rstrip())
        lines.pos += 1

    def once(key: str, lineno: int):
        if key in seen_line:
            lines.error(f"duplicate '{key}' line (first given on line {seen_line[key]})", lineno)
        seen_line[key] = lineno

    while not lines.at_end():
        lineno = lines.pos + 1
        raw = lines.raw[lines.pos]
        lines.pos += 1
        body = _strip(raw)
        toks = body.split()
        if "# TYPEIDX #" in raw:
            once("# TYPEIDX #", lineno)
            if n_types is None:
                lines.error("'# TYPEIDX #' table before 'ATOM TYPES: N'", lineno)
            for i in range(n_types):
                ln, _, t = lines.next_nonblank(f"atom type line {i} of {n_types}")
                if len(t) < 4:
                    lines.error(f"expected 'index symbol charge mass' for atom type {i}, found {' '.join(t)!r}", ln)
                idx = _to_int(lines, t[0], ln, "the atom type index")
                if idx != i:
                    lines.error(f"atom type index {idx} out of order: expected {i}", ln)
                if any(t[1] == x.symbol for x in types):
                    lines.error(f"atom type symbol {t[1]!r} is given twice: atom type symbols are not unique", ln)
                types.append(AtomType(t[1], t[2], _to_float(lines, t[3], ln, "the atom mass")))
            continue
        if "# PAIRIDX #" in raw:
            once("# PAIRIDX #", lineno)
            if n_pairs is None:
                lines.error("'# PAIRIDX #' table before 'ATOM PAIRS: M'", lineno)
            for i in range(n_pairs):
                ln, _, t = lines.next_nonblank(f"pair type line {i} of {n_pairs}")
                _expect_tokens(lines, t, (7, 8), ln,
                               "a pair line 'idx A B S_MINIM S_MAXIM [S_DELTA] CHBDIST MORSE_LAMBDA'")
                idx = _to_int(lines, t[0], ln, "the pair index")
                if idx != i:
                    lines.error(f"pair index {idx} out of order: expected {i}", ln)
                for sym in t[1:3]:
                    if sym not in [x.symbol for x in types]:
                        lines.error(f"pair {i} uses element {sym!r}, which is not an atom type "
                                    f"({' '.join(x.symbol for x in types)})", ln)
                sdelta = _to_float(lines, t[5], ln, "S_DELTA") if len(t) == 8 else None
                chb = t[-2]
                if chb != "MORSE":
                    lines.error(f"CHBDIST must be MORSE (the only transform of the ChIMES calculator), found {chb!r}",
                                ln)
                pt = PairType(t[1], t[2], _to_float(lines, t[3], ln, "S_MINIM"), _to_float(lines, t[4], ln, "S_MAXIM"),
                              _to_float(lines, t[-1], ln, "MORSE_LAMBDA"), sdelta, chb)
                if not 0 <= pt.s_minim <= pt.s_maxim:
                    lines.error(f"pair {pt.name}: need 0 <= S_MINIM <= S_MAXIM, "
                                f"found {pt.s_minim} and {pt.s_maxim}", ln)
                if pt.morse_lambda <= 0:
                    lines.error(f"pair {pt.name}: MORSE_LAMBDA must be positive, found {pt.morse_lambda}", ln)
                pairs.append(pt)
            continue
        if not toks:
            continue
        if body.startswith("PAIRTYP:"):
            once("PAIRTYP", lineno)
            if len(toks) < 3 or toks[1] != "CHEBYSHEV":
                lines.error("expected 'PAIRTYP: CHEBYSHEV O2B [O3B [O4B [low high]]]'", lineno)
            o = [_to_int(lines, x, lineno, "a polynomial order") for x in toks[2:5]]
            while len(o) < 3:
                o.append(0)
            if o[0] < 1 or o[1] < 0 or o[2] < 0:
                lines.error(f"polynomial orders must be O2B >= 1, O3B >= 0, O4B >= 0; found {o}", lineno)
            orders = tuple(o)
            if len(toks) >= 7:
                cheby_range = (_to_float(lines, toks[5], lineno, "the Chebyshev range"),
                               _to_float(lines, toks[6], lineno, "the Chebyshev range"))
            continue
        if body.startswith("ATOM TYPES:"):
            once("ATOM TYPES", lineno)
            _expect_tokens(lines, toks, 3, lineno, "'ATOM TYPES: N'")
            n_types = _to_int(lines, toks[2], lineno, "the number of atom types")
            if n_types < 1:
                lines.error(f"need at least one atom type, found {n_types}", lineno)
            continue
        if body.startswith("ATOM PAIRS:"):
            once("ATOM PAIRS", lineno)
            _expect_tokens(lines, toks, 3, lineno, "'ATOM PAIRS: M'")
            n_pairs = _to_int(lines, toks[2], lineno, "the number of atom pairs")
            if n_types is not None and n_pairs != n_types * (n_types + 1) // 2:
                lines.error(f"'ATOM PAIRS: {n_pairs}' does not match {n_types} atom types "
                            f"(expected {n_types * (n_types + 1) // 2})", lineno)
            continue
        if body.startswith("ATOM PAIR TRIPLETS:"):
            once("ATOM PAIR TRIPLETS", lineno)
            _expect_tokens(lines, toks, 4, lineno, "'ATOM PAIR TRIPLETS: T'")
            n_trip = _to_int(lines, toks[3], lineno, "the number of triplet types")
            if n_types is not None and n_trip not in (0, _n_clusters(n_types, 3)):
                lines.error(f"'ATOM PAIR TRIPLETS: {n_trip}' does not match {n_types} atom types "
                            f"(expected {_n_clusters(n_types, 3)})", lineno)
            continue
        if body.startswith("ATOM PAIR QUADRUPLETS:"):
            once("ATOM PAIR QUADRUPLETS", lineno)
            _expect_tokens(lines, toks, 4, lineno, "'ATOM PAIR QUADRUPLETS: Q'")
            n_quad = _to_int(lines, toks[3], lineno, "the number of quadruplet types")
            if n_types is not None and n_quad not in (0, _n_clusters(n_types, 4)):
                lines.error(f"'ATOM PAIR QUADRUPLETS: {n_quad}' does not match {n_types} atom types "
                            f"(expected {_n_clusters(n_types, 4)})", lineno)
            continue
        if body.startswith("FCUT TYPE:"):
            once("FCUT TYPE", lineno)
            if len(toks) < 3 or toks[2] not in ("CUBIC", "TERSOFF"):
                lines.error("expected 'FCUT TYPE: CUBIC' or 'FCUT TYPE: TERSOFF <fraction>'", lineno)
            fcut_type = toks[2]
            if fcut_type == "TERSOFF":
                _expect_tokens(lines, toks, 4, lineno, "'FCUT TYPE: TERSOFF <fraction>'")
                fcut_var = _to_float(lines, toks[3], lineno, "the Tersoff cutoff fraction")
                if not 0.0 < fcut_var <= 1.0:
                    lines.error(f"the Tersoff cutoff fraction must be in (0, 1], found {fcut_var}", lineno)
            else:
                _expect_tokens(lines, toks, 3, lineno, "'FCUT TYPE: CUBIC'")
            continue
        if body.startswith("PAIR CHEBYSHEV PENALTY DIST:"):
            once("PENALTY DIST", lineno)
            _expect_tokens(lines, toks, 5, lineno, "'PAIR CHEBYSHEV PENALTY DIST: d'")
            pen_d = _to_float(lines, toks[4], lineno, "the penalty distance")
            continue
        if body.startswith("PAIR CHEBYSHEV PENALTY SCALING:"):
            once("PENALTY SCALING", lineno)
            _expect_tokens(lines, toks, 5, lineno, "'PAIR CHEBYSHEV PENALTY SCALING: A'")
            pen_a = _to_float(lines, toks[4], lineno, "the penalty scaling")
            continue
        if any(body.startswith(k) for k in LEGACY_KEYS):
            legacy.append(" ".join(toks))
            continue
        if body.startswith("SPECIAL "):
            if len(toks) < 5 or toks[1] not in BODY_KEYS or toks[2].rstrip(":") not in SPECIAL_KINDS \
                    or toks[3] not in ("ALL", "SPECIFIC"):
                lines.error("expected 'SPECIAL 3B|4B S_MINIM|S_MAXIM: ALL r' or '... SPECIFIC K'", lineno)
            key = (toks[1], toks[2].rstrip(":"))
            once(f"SPECIAL {key[0]} {key[1]}", lineno)
            if toks[3] == "ALL":
                _expect_tokens(lines, toks, 5, lineno, f"'SPECIAL {key[0]} {key[1]}: ALL r'")
                special[key] = SpecialCutoffs("ALL", _to_float(lines, toks[4], lineno, "the special cutoff"))
            else:
                _expect_tokens(lines, toks, 5, lineno, f"'SPECIAL {key[0]} {key[1]}: SPECIFIC K'")
                count = _to_int(lines, toks[4], lineno, "the number of SPECIFIC entries")
                npair = 3 if key[0] == "3B" else 6
                entries = []
                for i in range(count):
                    ln, _, t = lines.next_nonblank(f"SPECIFIC entry {i + 1} of {count}")
                    _expect_tokens(lines, t, 1 + 2 * npair, ln,
                                   f"SPECIAL {key[0]} entry {i + 1} of the {count} announced on line {lineno} "
                                   f"('KEY {npair} pair names {npair} cutoffs')")
                    vals = tuple(_to_float(lines, x, ln, "a special cutoff") for x in t[1 + npair:])
                    entries.append((t[0], tuple(t[1:1 + npair]), vals))
                    seen_line[f"special-entry-{key}-{i}"] = ln
                special[key] = SpecialCutoffs("SPECIFIC", entries=entries)
            continue
        if body.startswith("PAIR CHEBYSHEV PARAMS"):
            once("PAIR CHEBYSHEV PARAMS", lineno)
            if orders is None or n_pairs is None or len(pairs) != n_pairs:
                lines.error("'PAIR CHEBYSHEV PARAMS' before the PAIRTYP line and the pair table", lineno)
            for i in range(n_pairs):
                ln, _, t = lines.next_nonblank(f"'PAIRTYPE PARAMS: {i} A B'")
                if t[:2] != ["PAIRTYPE", "PARAMS:"] or len(t) != 5:
                    lines.error(f"expected 'PAIRTYPE PARAMS: {i} {pairs[i].atom1} {pairs[i].atom2}', "
                                f"found {' '.join(t)!r}", ln)
                idx = _to_int(lines, t[2], ln, "the pair index")
                if idx != i or (t[3], t[4]) != (pairs[i].atom1, pairs[i].atom2):
                    lines.error(f"expected pair block {i} {pairs[i].atom1} {pairs[i].atom2}, found "
                                f"{' '.join(t[2:])}", ln)
                pw = np.empty(orders[0], dtype=np.int64)
                cf = np.empty(orders[0], dtype=np.float64)
                for n in range(orders[0]):
                    ln, _, t = lines.next_nonblank(f"2-body coefficient {n} of {orders[0]} for pair {i}")
                    if len(t) != 2:
                        lines.error(f"expected 'power coefficient' (coefficient {n} of {orders[0]} for pair "
                                    f"{pairs[i].name}), found {' '.join(t)!r}", ln)
                    pw[n] = _to_int(lines, t[0], ln, "the 2-body power")
                    if not 0 <= pw[n] < orders[0]:
                        lines.error(f"2-body power {pw[n]} outside 0..{orders[0] - 1} (PAIRTYP order {orders[0]})",
                                    ln)
                    cf[n] = _to_float(lines, t[1], ln, "a 2-body coefficient")
                nxt = lines.peek_nonblank()
                charge = None
                if nxt is not None and nxt[2][0].startswith("q_"):
                    ln, _, t = lines.next_nonblank("charge line")
                    names = sorted(tok[2:] for tok in t[:3:2])
                    if (len(t) != 4 or t[1] != "x" or not t[2].startswith("q_")
                            or names != sorted((pairs[i].atom1, pairs[i].atom2))):
                        lines.error(f"expected 'q_{pairs[i].atom1} x q_{pairs[i].atom2} value' (the fitted charge "
                                    f"product of pair {pairs[i].name}), found {' '.join(t)!r}", ln)
                    _to_float(lines, t[3], ln, "a charge product")
                    charge = " ".join(t)
                pair_powers.append(pw)
                pair_coeffs.append(cf)
                pair_charges.append(charge)
            continue
        if body.startswith("TRIPLET CHEBYSHEV PARAMS"):
            once("TRIPLET CHEBYSHEV PARAMS", lineno)
            triplets = [_read_block(lines, "TRIPLETTYPE", 3, i, orders, seen_line) for i in range(n_trip)]
            continue
        if body.startswith("QUADRUPLET CHEBYSHEV PARAMS"):
            once("QUADRUPLET CHEBYSHEV PARAMS", lineno)
            quads = [_read_block(lines, "QUADRUPLETYPE", 4, i, orders, seen_line) for i in range(n_quad or 0)]
            continue
        if toks[0] in ("PAIRMAPS:", "TRIPMAPS:", "QUADMAPS:"):
            name = toks[0][:-1]
            once(name, lineno)
            _expect_tokens(lines, toks, 2, lineno, f"'{name}: K'")
            count = _to_int(lines, toks[1], lineno, f"the number of {name} entries")
            entries = []
            for i in range(count):
                ln, _, t = lines.next_nonblank(f"{name} entry {i + 1} of {count}")
                _expect_tokens(lines, t, 2, ln, f"a {name} entry 'index KEY'")
                entries.append((_to_int(lines, t[0], ln, f"the {name} index"), t[1]))
                seen_line[f"{name}-{i}"] = ln
            maps[name] = entries
            continue
        if body.startswith("NO ENERGY OFFSETS:"):
            once("NO ENERGY OFFSETS", lineno)
            count = _to_int(lines, toks[-1], lineno, "the number of energy offsets")
            if n_types is not None and count != n_types:
                lines.error(f"expected {n_types} energy offsets (one per atom type), found {count}", lineno)
            offsets = np.zeros(count)
            for i in range(count):
                ln, _, t = lines.next_nonblank(f"'ENERGY OFFSET {i + 1} value'")
                if len(t) != 4 or t[:2] != ["ENERGY", "OFFSET"]:
                    lines.error(f"expected 'ENERGY OFFSET {i + 1} value', found {' '.join(t)!r}", ln)
                k = _to_int(lines, t[2], ln, "the energy-offset type number")
                if k != i + 1:
                    lines.error(f"energy offset numbered {k}, expected {i + 1} (1-based, in type order)", ln)
                offsets[i] = _to_float(lines, t[3], ln, "an energy offset")
            continue
        if len(toks[0]) > 1 and toks[0].endswith(":") and toks[0][:-1].replace("_", "").isalnum() \
                and toks[0][:-1].isupper() and orders is None:
            once(toks[0], lineno)
            flags[toks[0][:-1]] = " ".join(toks[1:])
            continue
        lines.error(f"unrecognised line {body.strip()!r}")

    # ------------------------------------------------------------ completeness checks
    def need(cond: bool, message: str):
        if not cond:
            lines.error(message, lineno=None)

    need(orders is not None, "missing 'PAIRTYP: CHEBYSHEV ...' line: is this a ChIMES force field parameter file?")
    need(n_types is not None, "missing 'ATOM TYPES: N' line")
    need(len(types) == n_types, "missing '# TYPEIDX #' atom type table")
    need(n_pairs is not None, "missing 'ATOM PAIRS: M' line")
    need(n_pairs == n_types * (n_types + 1) // 2,
         f"'ATOM PAIRS: {n_pairs}' does not match {n_types} atom types (expected {n_types * (n_types + 1) // 2})")
    need(len(pairs) == n_pairs, "missing '# PAIRIDX #' pair table")
    need(len(pair_coeffs) == n_pairs, "missing 'PAIR CHEBYSHEV PARAMS' section")
    symbols = [t.symbol for t in types]
    if len(set(symbols)) != len(symbols):
        lines.error(f"atom type symbols are not unique: {symbols}", seen_line["# TYPEIDX #"])
    expected_pairs = {tuple(sorted((a, b))) for a, b in itertools.combinations_with_replacement(symbols, 2)}
    for i, p in enumerate(pairs):
        for s in (p.atom1, p.atom2):
            if s not in symbols:
                lines.error(f"pair {i} uses element {s!r}, which is not an atom type ({symbols})",
                            seen_line["# PAIRIDX #"] + 1 + i)
    got_pairs = {tuple(sorted((p.atom1, p.atom2))) for p in pairs}
    need(got_pairs == expected_pairs, f"pair table must list every pair of {symbols} once")

    params = ChimesParams(
        orders=orders, types=types, pairs=pairs, pair_powers=pair_powers, pair_coeffs=pair_coeffs,
        comments=comments, flags=flags, cheby_range=cheby_range, fcut_type=fcut_type, fcut_var=fcut_var,
        penalty_dist=pen_d, penalty_scaling=pen_a, special=special, pair_charges=pair_charges,
        n_triplets=n_trip, n_quadruplets=n_quad, triplets=triplets, quadruplets=quads,
        pairmaps=maps.get("PAIRMAPS", []), tripmaps=maps.get("TRIPMAPS", []), quadmaps=maps.get("QUADMAPS", []),
        energy_offsets=offsets, source=filename, legacy_lines=legacy,
    )
    _validate_clusters(params, lines, seen_line, maps)
    return params


def _read_block(lines: _Lines, kind: str, natoms: int, i: int, orders, seen_line) -> ClusterBlock:
    """Read one TRIPLETTYPE/QUADRUPLETYPE block starting at the cursor."""
    npair = natoms * (natoms - 1) // 2
    order = orders[1] if natoms == 3 else orders[2]
    ln, _, t = lines.next_nonblank(f"'{kind} PARAMS:' (block {i})")
    if t != [kind, "PARAMS:"]:
        lines.error(f"expected '{kind} PARAMS:' for block {i}, found {' '.join(t)!r}", ln)
    ln, _, t = lines.next_nonblank(f"'INDEX: {i} ATOMS: ...'")
    # the label is not checked beyond its colon: an official file spells it "ATYMS:"
    if len(t) != 3 + natoms or t[0] != "INDEX:" or not t[2].endswith(":"):
        lines.error(f"expected 'INDEX: {i} ATOMS: {' '.join(['X'] * natoms)}', found {' '.join(t)!r}", ln)
    idx = _to_int(lines, t[1], ln, "the block index")
    if idx != i:
        lines.error(f"block index {idx} out of order: expected {i}", ln)
    atoms = tuple(t[3:])
    seen_line[f"{kind}-{i}-atoms"] = ln
    ln_pairs, _, t = lines.next_nonblank("'PAIRS: ... UNIQUE: u TOTAL: n' or 'PAIRS: ... EXCLUDED:'")
    seen_line[f"{kind}-{i}-pairs"] = ln_pairs
    if len(t) == 2 + npair and t[0] == "PAIRS:" and t[-1] == "EXCLUDED:":
        empty_i = np.zeros((0, npair), dtype=np.int64)
        return ClusterBlock(idx, atoms, tuple(t[1:1 + npair]), True, 0, empty_i, np.zeros(0, np.int64),
                            np.zeros(0, np.int64), np.zeros(0))
    if len(t) != 5 + npair or t[0] != "PAIRS:" or t[1 + npair] != "UNIQUE:" or t[3 + npair] != "TOTAL:":
        lines.error(f"expected 'PAIRS: {' '.join(['AB'] * npair)} UNIQUE: u TOTAL: n' or '... EXCLUDED:', "
                    f"found {' '.join(t)!r}", ln_pairs)
    pair_names = tuple(t[1:1 + npair])
    unique = _to_int(lines, t[2 + npair], ln_pairs, "UNIQUE")
    total = _to_int(lines, t[4 + npair], ln_pairs, "TOTAL")
    if total < 0:
        lines.error(f"TOTAL must be >= 0, found {total}", ln_pairs)
    # two header lines (column titles and dashes)
    for _ in range(2):
        ln, raw, t = lines.next_nonblank("the column header of the coefficient table")
        if not ("index" in raw or set(raw.strip()) <= {"-"}):
            lines.error(f"expected the column header ('index | powers | ...') or a dashes line, found "
                        f"{raw.strip()!r}", ln)
    ncol = 1 + npair + 3
    # a file cannot hold more rows than it has lines: a huge TOTAL fails at the line where rows run out
    room = min(total, lines.end - lines.pos)
    powers = np.empty((room, npair), dtype=np.int64)
    equiv = np.empty(room, dtype=np.int64)
    param = np.empty(room, dtype=np.int64)
    values = np.empty(room)
    for r in range(total):
        ln, _, t = lines.next_nonblank(f"coefficient row {r + 1} of TOTAL {total} in {kind} block {i}")
        if len(t) != ncol:
            lines.error(f"expected {ncol} fields 'index {npair} powers equiv param value' in row {r + 1} of "
                        f"{kind} block {i} (TOTAL: {total}), found {' '.join(t)!r}", ln)
        for k in range(npair):
            p = _to_int(lines, t[1 + k], ln, "a power")
            if not 0 <= p < order:
                lines.error(f"power {p} outside 0..{order - 1} (PAIRTYP order {order} = max power + 1)", ln)
            powers[r, k] = p
        equiv[r] = _to_int(lines, t[1 + npair], ln, "the equivalence index")
        param[r] = _to_int(lines, t[2 + npair], ln, "the parameter index")
        values[r] = _to_float(lines, t[3 + npair], ln, "a coefficient")
    nxt = lines.peek_nonblank()
    if nxt is not None and nxt[2][0].lstrip("-").isdigit() and len(nxt[2]) == ncol:
        lines.error(f"more coefficient rows than TOTAL: {total} in {kind} block {i}", nxt[0])
    return ClusterBlock(idx, atoms, pair_names, False, unique, powers, equiv, param, values)


def _validate_clusters(p: ChimesParams, lines: _Lines, seen_line: dict[str, int], maps) -> None:
    symbols = p.symbols
    names = [q.name for q in p.pairs]
    all_names = names + [q.atom2 + q.atom1 for q in p.pairs]
    n = len(symbols)

    def check_map(name: str, nbody: int, blocks: list[ClusterBlock]):
        entries = maps.get(name)
        npair = nbody * (nbody - 1) // 2
        if entries is None:
            if blocks:
                lines.error(f"missing '{name}:' section (needed for the {len(blocks)} {nbody}-body blocks)",
                            lineno=None)
            return
        for k, (idx, key) in enumerate(entries):
            ln = seen_line.get(f"{name}-{k}")
            split = _split_pair_names(key, all_names)
            if split is None or len(split) != npair:
                lines.error(f"{name} key {key!r} is not {npair} pair names of the atom types {symbols}", ln)
            if nbody == 2:
                if idx < 0 or idx >= len(p.pairs):
                    lines.error(f"PAIRMAPS index {idx} outside 0..{len(p.pairs) - 1}", ln)
            elif idx < -1 or idx >= len(blocks):
                lines.error(f"{name} index {idx} outside -1..{len(blocks) - 1}", ln)
        expected = n ** nbody
        if nbody > 2 and len(entries) != expected:
            lines.error(f"{name} has {len(entries)} entries, expected {expected} (every ordered type tuple)",
                        seen_line.get(name))

    check_map("PAIRMAPS", 2, p.pairs)
    if p.orders[1] > 0:
        if p.n_triplets != _n_clusters(n, 3):
            lines.error(f"'ATOM PAIR TRIPLETS: {p.n_triplets}' does not match {n} atom types "
                        f"(expected {_n_clusters(n, 3)})", seen_line.get("ATOM PAIR TRIPLETS"))
        if len(p.triplets) != p.n_triplets:
            lines.error("missing 'TRIPLET CHEBYSHEV PARAMS' section (PAIRTYP asks for 3-body terms)", lineno=None)
    if p.orders[2] > 0:
        if p.n_quadruplets != _n_clusters(n, 4):
            lines.error(f"'ATOM PAIR QUADRUPLETS: {p.n_quadruplets}' does not match {n} atom types "
                        f"(expected {_n_clusters(n, 4)})", seen_line.get("ATOM PAIR QUADRUPLETS"))
        if len(p.quadruplets) != p.n_quadruplets:
            lines.error("missing 'QUADRUPLET CHEBYSHEV PARAMS' section (PAIRTYP asks for 4-body terms)", lineno=None)
    for blocks, kind in ((p.triplets, "TRIPLETTYPE"), (p.quadruplets, "QUADRUPLETYPE")):
        for b in blocks:
            for s in b.atoms:
                if s not in symbols:
                    lines.error(f"{kind} block {b.index} uses element {s!r}, which is not an atom type {symbols}",
                                seen_line.get(f"{kind}-{b.index}-atoms"))
            for nm in b.pairs:
                if nm not in all_names:
                    lines.error(f"{kind} block {b.index} uses pair {nm!r}, not a pair of the atom types {symbols}",
                                seen_line.get(f"{kind}-{b.index}-pairs"))
    if p.orders[1] > 0:
        check_map("TRIPMAPS", 3, p.triplets)
    if p.orders[2] > 0:
        check_map("QUADMAPS", 4, p.quadruplets)
    for key, spec in p.special.items():
        if spec.mode != "SPECIFIC":
            continue
        map_entries = dict((k, i) for i, k in (p.tripmaps if key[0] == "3B" else p.quadmaps))
        for k, (mkey, pnames, _) in enumerate(spec.entries):
            ln = seen_line.get(f"special-entry-{key}-{k}")
            if mkey not in map_entries:
                lines.error(f"SPECIAL {key[0]} {key[1]} key {mkey!r} is not a {'TRIP' if key[0] == '3B' else 'QUAD'}"
                            f"MAPS key of this file", ln)
            for nm in pnames:
                if nm not in all_names:
                    lines.error(f"SPECIAL {key[0]} {key[1]} entry uses pair {nm!r}, not a pair of {symbols}", ln)


def _n_clusters(ntypes: int, nbody: int) -> int:
    return math.comb(ntypes + nbody - 1, nbody)


# ===================================================================== writing
def _num(x: float) -> str:
    """Shortest text that reads back to exactly the same float."""
    return repr(float(x))


def format_params(p: ChimesParams) -> str:
    """The text of a parameter file in the official format (as chimes_lsq.py writes it)."""
    out: list[str] = []
    w = out.append
    for c in p.comments:
        w(c)
    for k, v in p.flags.items():
        w(f"{k}: {v}".rstrip())
    w("")
    lo, hi = p.cheby_range
    w(f"PAIRTYP: CHEBYSHEV  {p.orders[0]} {p.orders[1]} {p.orders[2]} {_fmt_range(lo)} {_fmt_range(hi)}")
    w("")
    w(f"ATOM TYPES: {len(p.types)}")
    w("")
    w("# TYPEIDX #\t# ATM_TYP #\t# ATMCHRG #\t# ATMMASS #")
    for i, t in enumerate(p.types):
        w(f"{i}\t{t.symbol}\t{t.charge}\t{_num(t.mass)}")
    w("")
    w(f"ATOM PAIRS: {len(p.pairs)}")
    w("")
    with_delta = all(q.s_delta is not None for q in p.pairs)
    head = "# PAIRIDX #\t# ATM_TY1 #\t# ATM_TY1 #\t# S_MINIM #\t# S_MAXIM #\t"
    w(head + ("# S_DELTA #\t" if with_delta else "") + "# CHBDIST #\t# MORSE_LAMBDA #")
    for i, q in enumerate(p.pairs):
        delta = f"\t{_num(q.s_delta)}" if with_delta else ""
        w(f"{i}\t{q.atom1}\t{q.atom2}\t{_num(q.s_minim)}\t{_num(q.s_maxim)}{delta}\t{q.chbdist}\t"
          f"{_num(q.morse_lambda)}")
    w("")
    w(f"FCUT TYPE: {p.fcut_type}" + (f" {_num(p.fcut_var)}" if p.fcut_type == "TERSOFF" else ""))
    w("")
    if p.penalty_dist is not None:
        w(f"PAIR CHEBYSHEV PENALTY DIST: {_num(p.penalty_dist)}")
    if p.penalty_scaling is not None:
        w(f"PAIR CHEBYSHEV PENALTY SCALING: {_num(p.penalty_scaling)}")
    if p.penalty_dist is not None or p.penalty_scaling is not None:
        w("")
    for line in p.legacy_lines:
        w(line)
        w("")
    for body in BODY_KEYS:
        for kind in SPECIAL_KINDS:
            spec = p.special.get((body, kind))
            if spec is None:
                continue
            if spec.mode == "ALL":
                w(f"SPECIAL {body} {kind}: ALL {_num(spec.value)}")
            else:
                w(f"SPECIAL {body} {kind}: SPECIFIC {len(spec.entries)}")
                for key, names, vals in spec.entries:
                    w(" ".join([key, *names, *(_num(v) for v in vals)]))
            w("")
    w(f"ATOM PAIR TRIPLETS: {p.n_triplets}")
    if p.n_quadruplets is not None:
        w(f"ATOM PAIR QUADRUPLETS: {p.n_quadruplets}")
    w("")
    w("PAIR CHEBYSHEV PARAMS")
    w("")
    for i, q in enumerate(p.pairs):
        w(f"PAIRTYPE PARAMS: {i} {q.atom1} {q.atom2}")
        w("")
        for pw, c in zip(p.pair_powers[i], p.pair_coeffs[i], strict=False):
            w(f"{int(pw)} {_num(c)}")
        if p.pair_charges and p.pair_charges[i]:
            w(p.pair_charges[i])
        w(" ")
    if p.triplets:
        w("TRIPLET CHEBYSHEV PARAMS")
        w("")
        for b in p.triplets:
            _write_block(w, "TRIPLETTYPE", b)
    if p.quadruplets:
        w("QUADRUPLET CHEBYSHEV PARAMS")
        w("")
        for b in p.quadruplets:
            _write_block(w, "QUADRUPLETYPE", b)
    for name, entries in (("PAIRMAPS", p.pairmaps), ("TRIPMAPS", p.tripmaps), ("QUADMAPS", p.quadmaps)):
        if entries:
            w(f"{name}: {len(entries)}")
            for idx, key in entries:
                w(f"{idx} {key}")
            w("")
    if p.energy_offsets is not None:
        w(f"NO ENERGY OFFSETS: {len(p.energy_offsets)}")
        for i, e in enumerate(p.energy_offsets):
            w(f"ENERGY OFFSET {i + 1} {_num(e)}")
        w("")
    w("ENDFILE")
    return "\n".join(out) + "\n"


def _fmt_range(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else _num(x)


def _write_block(w, kind: str, b: ClusterBlock) -> None:
    w(f"{kind} PARAMS:")
    w(f"   INDEX: {b.index} ATOMS: {' '.join(b.atoms)}")
    if b.excluded:
        w(f"   PAIRS: {' '.join(b.pairs)} EXCLUDED:")
        w("")
        return
    w(f"   PAIRS: {' '.join(b.pairs)} UNIQUE: {b.unique} TOTAL: {b.total}")
    w("     index  |  powers  |  equiv index  |  param index  |       parameter       ")
    w("   " + "-" * 76)
    for r in range(b.total):
        pw = " ".join(f"{int(x):2d}" for x in b.powers[r])
        w(f"   {r:5d}  {pw}   {int(b.equiv[r]):8d}  {int(b.param[r]):8d}   {_num(b.values[r])}")
    w("")
