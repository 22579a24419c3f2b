"""Reader and writer of the ``chimes_lsq`` input file ``fm_setup.in``.

Syntax (``chimes_lsq`` ``src/input.C``; ``shared/notes/chimes.md`` 3.1): a keyword is a line ``# KEY #`` and its
value is the next non-blank line; text after ``!`` is a comment and lines starting with ``##`` are comments;
tables ``# TYPEIDX #`` (NATMTYP rows ``idx sym charge mass``) and ``# PAIRIDX #`` (NPAIR rows
``idx A B S_MINIM S_MAXIM S_DELTA MORSE_LAMBDA [...]``, any order); blocks ``EXCLUDE nB INTERACTION: k``,
``SPECIAL nB S_MINIM|S_MAXIM: ALL r | SPECIFIC K`` and ``CHARGE CONSTRAINTS:``; the file ends at ``# ENDFILE #``.
The reader fills a :class:`~aiida_chimes.chimes.fit_setup.FitSetup` and validates it; the writer produces a file
that reads back to an equal setup and that the official ``chimes_lsq`` reads.
"""

from __future__ import annotations

import math
import os

from ..fit_setup import (
    DEFAULT_CHEBY_FIX,
    DEFAULT_TRAJ_LIST,
    FitSetup,
    FitSetupError,
    PairSetup,
    TrajectorySource,
    _fmt_num,
    canonical_pair_order,
    validate_fit_setup,
)
from ..params import SpecialCutoffs

#: Keywords of ``# KEY #`` lines, in the order chimes_lsq processes them.
KEYWORDS = (
    "TRJFILE", "WRAPTRJ", "SPLITFI", "HIERARC", "NFRAMES", "NLAYERS", "FITCOUL", "FITSTRS", "FITENER",
    "PAIRTYP", "CHBTYPE", "CHEBYFIX", "USENEIG", "SKPFRMS", "NATMTYP", "TYPEIDX", "PAIRIDX", "FCUTTYP",
    "CNSCOUL", "FITPOVR", "ENDFILE",
)
#: Accepted for compatibility and ignored (neighbour lists are always used; legacy Coulomb/overbonding keys).
IGNORED_KEYWORDS = ("USENEIG", "CNSCOUL", "FITPOVR")
REQUIRED = ("TRJFILE", "NFRAMES", "PAIRTYP", "NATMTYP")
#: chimes_lsq stops with an error after 1000 non-blank lines without ``# ENDFILE #``.
MAX_CONTENT_LINES = 1000

_EXAMPLES = {
    "TRJFILE": "'input.xyzf' or 'MULTI traj_list.dat'", "WRAPTRJ": "'true'", "SPLITFI": "'false'",
    "HIERARC": "'false'", "NFRAMES": "'20'", "NLAYERS": "'1'", "FITCOUL": "'false'",
    "FITSTRS": "'false', 'true', 'ALL', 'FIRST n' or 'FIRSTALL n'", "FITENER": "'false', 'true' or 'FIRST n'",
    "PAIRTYP": "'CHEBYSHEV 12 5 3'", "CHBTYPE": "'MORSE'", "CHEBYFIX": "'SMOOTH 0.01'", "USENEIG": "'true'",
    "SKPFRMS": "'1'", "NATMTYP": "'2'", "FCUTTYP": "'CUBIC' or 'TERSOFF 0.5'", "CNSCOUL": "'false'",
    "FITPOVR": "'false'",
}


def _known() -> str:
    return ", ".join(f"# {k} #" for k in KEYWORDS)


def _is_keyword(toks: list[str]) -> bool:
    return len(toks) >= 3 and toks[0] == "#" and toks[2] == "#"


def _is_header(toks: list[str]) -> bool:
    """A line that starts something (keyword, table, block): never a value or table row."""
    return _is_keyword(toks) or toks[0] in ("EXCLUDE", "SPECIAL") or toks[:2] == ["CHARGE", "CONSTRAINTS:"]


def _as_int(tok: str):
    try:
        return int(tok)
    except ValueError:
        return None


def _as_float(tok: str):
    try:
        value = float(tok)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Parser:
    def __init__(self, text: str, filename: str, base_dir: str):
        self.filename = filename
        self.base_dir = base_dir
        self.raw = text.splitlines()
        self.items: list[tuple[int, list[str]]] = []
        self.pos = 0
        self.values: dict[str, tuple[int, int, list[str]]] = {}  # key -> (keyword line, value line, tokens)
        self.lines: dict = {}
        self._scan()

    def fail(self, lineno: int | None, message: str):
        raise FitSetupError(self.filename, lineno, message)

    def _scan(self) -> None:
        count = 0
        for n, line in enumerate(self.raw, 1):
            body = line.split("!", 1)[0]
            toks = body.split()
            if not toks:
                continue
            if "# ENDFILE #" in body:
                self.end_line = n
                return
            if toks[:3] == ["#", "ENDFILE", "#"]:
                self.fail(n, "write the end marker exactly as '# ENDFILE #' (single spaces): chimes_lsq searches "
                          "for that text and would not stop here")
            count += 1
            if count >= MAX_CONTENT_LINES:
                self.fail(n, f"no '# ENDFILE #' within the first {MAX_CONTENT_LINES} non-blank lines: chimes_lsq "
                          "stops reading there; end the file with '# ENDFILE #'")
            if toks[0].startswith("##"):
                continue
            self.items.append((n, toks))
        self.fail(len(self.raw) or None, "missing '# ENDFILE #' line: the file is truncated or is not a chimes_lsq "
                  "input; end it with '# ENDFILE #'")

    # ------------------------------------------------------------ cursor
    def next(self):
        if self.pos >= len(self.items):
            return None
        item = self.items[self.pos]
        self.pos += 1
        return item

    def peek(self):
        return self.items[self.pos] if self.pos < len(self.items) else None

    def body_line(self, header_ln: int, what: str):
        """Next line of a table/block; error when the block ends early."""
        item = self.peek()
        if item is None or _is_header(item[1]):
            self.fail(item[0] if item else self.end_line, f"{what} is missing (block starting on line {header_ln})")
        self.pos += 1
        return item

    def once(self, key: str, ln: int) -> None:
        if key in self.lines:
            first = self.lines[key]
            self.fail(ln, f"'{key}' is given twice (first on line {first}): keep one")
        self.lines[key] = ln

    # ------------------------------------------------------------ first pass
    def prescan_natmtyp(self) -> None:
        self.natmtyp = None
        self.natmtyp_line = None
        for k, (_ln, toks) in enumerate(self.items):
            if _is_keyword(toks) and toks[1] == "NATMTYP" and k + 1 < len(self.items):
                vln, vt = self.items[k + 1]
                if not _is_header(vt):
                    n = _as_int(vt[0])
                    if n is None or len(vt) != 1 or n < 1:
                        self.fail(vln, f"'# NATMTYP #' must be followed by the number of atom types (>= 1), "
                                  f"found {' '.join(vt)!r}")
                    self.natmtyp, self.natmtyp_line = n, vln
                return

    def need_natmtyp(self, ln: int, what: str) -> int:
        if self.natmtyp is None:
            self.fail(ln, f"{what} needs '# NATMTYP #' (the number of atom types): add it with its value")
        return self.natmtyp

    # ------------------------------------------------------------ main pass
    def parse(self):
        self.prescan_natmtyp()
        self.type_rows: list[tuple[int, list[str]]] = []
        self.pair_rows: list[tuple[int, list[str]]] = []
        self.exclude_raw: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
        self.special: dict[tuple[str, str], SpecialCutoffs] = {}
        self.charge_constraints: list[str] = []
        while True:
            item = self.next()
            if item is None:
                break
            ln, toks = item
            if _is_keyword(toks):
                self.keyword(ln, toks)
            elif toks[0] == "EXCLUDE":
                self.exclude_block(ln, toks)
            elif toks[0] == "SPECIAL":
                self.special_block(ln, toks)
            elif toks[:2] == ["CHARGE", "CONSTRAINTS:"]:
                self.charge_block(ln, toks)
            else:
                self.fail(ln, f"unrecognised line {' '.join(toks)!r}: expected a keyword line ({_known()}), "
                          "'EXCLUDE nB INTERACTION: k', 'SPECIAL nB S_MINIM|S_MAXIM: ALL r|SPECIFIC K' or "
                          "'CHARGE CONSTRAINTS:'; comments start with '!' or '##'")
        return self.build()

    def keyword(self, ln: int, toks: list[str]) -> None:
        key = toks[1]
        if key not in KEYWORDS:
            self.fail(ln, f"unknown keyword '# {key} #': known keywords are {_known()}")
        if key == "TYPEIDX":
            self.types_table(ln)
            return
        if key == "PAIRIDX":
            self.pairs_table(ln)
            return
        if len(toks) > 3:
            self.fail(ln, f"unexpected text {' '.join(toks[3:])!r} after '# {key} #': the value goes on the next "
                      "line (use '!' for comments)")
        if key in self.values:
            self.fail(ln, f"'# {key} #' is given twice (first on line {self.values[key][0]}): keep one")
        item = self.peek()
        if item is None or _is_header(item[1]):
            self.fail(ln, f"missing value after '# {key} #': give it on the next line, e.g. {_EXAMPLES[key]}")
        self.pos += 1
        self.values[key] = (ln, item[0], item[1])

    def types_table(self, ln: int) -> None:
        self.once("TYPEIDX", ln)
        n = self.need_natmtyp(ln, "the '# TYPEIDX #' table")
        for j in range(n):
            item = self.peek()
            if item is None or _is_header(item[1]):
                self.fail(item[0] if item else self.end_line,
                          f"'# NATMTYP #' is {n} (line {self.natmtyp_line}) but the TYPEIDX table has only {j} "
                          "rows: NATMTYP must equal the number of rows")
            self.pos += 1
            rln, t = item
            if len(t) < 4:
                self.fail(rln, f"expected a TYPEIDX row 'index symbol charge mass', found {' '.join(t)!r}")
            idx = _as_int(t[0])
            if idx != j + 1:
                self.fail(rln, f"TYPEIDX index {t[0]!r} on row {j + 1}: number the rows 1, 2, ... in order")
            self.type_rows.append((rln, t))
        item = self.peek()
        if item is not None and not _is_header(item[1]) and len(item[1]) >= 4 and _as_int(item[1][0]) is not None:
            self.fail(item[0], f"the TYPEIDX table has more rows than the {n} given by '# NATMTYP #' (line "
                      f"{self.natmtyp_line}): NATMTYP must equal the number of rows")

    def pairs_table(self, ln: int) -> None:
        self.once("PAIRIDX", ln)
        n = self.need_natmtyp(ln, "the '# PAIRIDX #' table")
        npair = n * (n + 1) // 2
        for j in range(npair):
            item = self.peek()
            if item is None or _is_header(item[1]):
                self.fail(item[0] if item else self.end_line,
                          f"the PAIRIDX table has {j} rows but needs NATMTYP*(NATMTYP+1)/2 = {npair}, one for "
                          "every pair of atom types")
            self.pos += 1
            rln, t = item
            if len(t) < 7:
                self.fail(rln, "expected a PAIRIDX row 'index A B S_MINIM S_MAXIM S_DELTA MORSE_LAMBDA', found "
                          f"{' '.join(t)!r}")
            self.pair_rows.append((rln, t))
        item = self.peek()
        if item is not None and not _is_header(item[1]) and len(item[1]) >= 7 and _as_float(item[1][3]) is not None:
            self.fail(item[0], f"the PAIRIDX table has more rows than NATMTYP*(NATMTYP+1)/2 = {npair}: give one "
                      "row for every pair of atom types")

    def exclude_block(self, ln: int, toks: list[str]) -> None:
        if (len(toks) != 4 or toks[1] not in ("1B", "2B", "3B", "4B") or toks[2] != "INTERACTION:"
                or _as_int(toks[3]) is None or int(toks[3]) < 0):
            self.fail(ln, f"expected 'EXCLUDE nB INTERACTION: k' (n = 1..4, k >= 0), found {' '.join(toks)!r}")
        body = int(toks[1][0])
        self.once(f"EXCLUDE {body}B INTERACTION", ln)
        self.lines[("exclude", body)] = ln
        entries = []
        for j in range(int(toks[3])):
            rln, t = self.body_line(ln, f"EXCLUDE {body}B entry {j + 1} of {toks[3]}")
            if len(t) != body:
                self.fail(rln, f"EXCLUDE {body}B entry {' '.join(t)!r} must list {body} element "
                          f"symbol{'s' if body > 1 else ''}")
            entries.append((rln, tuple(t)))
        self.exclude_raw[body] = entries

    def special_block(self, ln: int, toks: list[str]) -> None:
        if (len(toks) != 5 or toks[1] not in ("3B", "4B") or toks[2] not in ("S_MINIM:", "S_MAXIM:")
                or toks[3] not in ("ALL", "SPECIFIC")):
            self.fail(ln, "expected 'SPECIAL 3B|4B S_MINIM|S_MAXIM: ALL r' or '... SPECIFIC K', found "
                      f"{' '.join(toks)!r}")
        key = (toks[1], toks[2][:-1])
        self.once(f"SPECIAL {key[0]} {key[1]}", ln)
        self.lines[("special", *key)] = ln
        if toks[3] == "ALL":
            value = _as_float(toks[4])
            if value is None:
                self.fail(ln, f"expected a number after ALL, found {toks[4]!r}")
            self.special[key] = SpecialCutoffs("ALL", value)
            return
        count = _as_int(toks[4])
        if count is None or count < 1:
            self.fail(ln, f"expected the number of SPECIFIC entries (>= 1) after SPECIFIC, found {toks[4]!r}")
        npair = 3 if key[0] == "3B" else 6
        entries = []
        for j in range(count):
            rln, t = self.body_line(ln, f"SPECIAL {key[0]} {key[1]} entry {j + 1} of {count}")
            if len(t) != 1 + 2 * npair:
                self.fail(rln, f"SPECIAL {key[0]} entry must have {1 + 2 * npair} fields ('KEY', {npair} pair "
                          f"names, {npair} cutoffs), found {len(t)}: {' '.join(t)!r}")
            vals = []
            for x in t[1 + npair:]:
                v = _as_float(x)
                if v is None:
                    self.fail(rln, f"expected a number for a SPECIAL cutoff, found {x!r}")
                vals.append(v)
            entries.append((t[0], tuple(t[1:1 + npair]), tuple(vals)))
            self.lines[("special", *key, j)] = rln
        self.special[key] = SpecialCutoffs("SPECIFIC", entries=entries)

    def charge_block(self, ln: int, toks: list[str]) -> None:
        if len(toks) != 2:
            self.fail(ln, f"expected 'CHARGE CONSTRAINTS:' alone on its line, found {' '.join(toks)!r}")
        self.once("CHARGE CONSTRAINTS", ln)
        n = self.need_natmtyp(ln, "'CHARGE CONSTRAINTS:'")
        npair = n * (n + 1) // 2
        for j in range(npair - 1):
            rln, t = self.body_line(ln, f"charge constraint {j + 1} of NPAIR-1 = {npair - 1}")
            if len(t) != 2 * npair + 1:
                self.fail(rln, f"a charge constraint needs {2 * npair + 1} fields ({npair} pair names, {npair} "
                          f"coefficients, the value), found {len(t)}: {' '.join(t)!r}")
            self.charge_constraints.append(" ".join(t))
            self.lines[("charge", j)] = rln

    # ------------------------------------------------------------ values
    def value(self, key: str):
        """(value line, tokens) of a keyword, or (None, None) when absent."""
        if key not in self.values:
            return None, None
        _, vln, toks = self.values[key]
        self.lines[key] = vln
        return vln, toks

    def boolean(self, key: str, default: bool) -> bool:
        vln, toks = self.value(key)
        if toks is None:
            return default
        word = toks[0].lower()
        if len(toks) != 1 or word not in ("true", "false", "t", "f"):
            self.fail(vln, f"'# {key} #' must be true or false, found {' '.join(toks)!r}")
        return word in ("true", "t")

    def integer(self, key: str, default, minimum: int | None = None):
        vln, toks = self.value(key)
        if toks is None:
            return default
        n = _as_int(toks[0])
        if n is None or len(toks) != 1:
            self.fail(vln, f"'# {key} #' must be an integer, found {' '.join(toks)!r}")
        if minimum is not None and n < minimum:
            self.fail(vln, f"'# {key} #' must be >= {minimum}, found {n}")
        return n

    def first_count(self, key: str, vln: int, toks: list[str]) -> int:
        if len(toks) != 2 or _as_int(toks[1]) is None:
            self.fail(vln, f"'# {key} #' {toks[0]} needs a frame count, e.g. '{toks[0].upper()} 10'; found "
                      f"{' '.join(toks)!r}")
        return int(toks[1])

    def build(self) -> FitSetup:
        for key in REQUIRED:
            if key not in self.values:
                self.fail(None, f"missing '# {key} #': add it with its value on the next line, e.g. "
                          f"{_EXAMPLES[key]}")
        for key in ("TYPEIDX", "PAIRIDX"):
            if key not in self.lines:
                self.fail(None, f"missing the '# {key} #' table")

        # ---- control variables
        vln, toks = self.value("TRJFILE")
        traj_list = None
        if len(toks) == 1:
            single = toks[0]
        elif len(toks) == 2 and toks[0] == "MULTI":
            single = None
            traj_list = toks[1]
        else:
            self.fail(vln, f"'# TRJFILE #' must be a file name or 'MULTI traj_list.dat', found {' '.join(toks)!r}")
        trj_line = vln
        wrap = self.boolean("WRAPTRJ", True)
        split_files = self.boolean("SPLITFI", False)
        hierarchical = self.boolean("HIERARC", False)
        nframes = self.integer("NFRAMES", None, minimum=0)
        nlayers = self.integer("NLAYERS", 1)
        fit_coulomb = self.boolean("FITCOUL", False)

        fit_stress, stress_first = "none", None
        vln, toks = self.value("FITSTRS")
        if toks is not None:
            word = toks[0].lower()
            if word == "first":
                fit_stress, stress_first = "diag", self.first_count("FITSTRS", vln, toks)
            elif word == "firstall":
                fit_stress, stress_first = "all", self.first_count("FITSTRS", vln, toks)
            elif word in ("all", "a"):
                if len(toks) > 2 or (len(toks) == 2 and _as_int(toks[1]) is None):
                    self.fail(vln, f"'# FITSTRS #' ALL takes no argument, found {' '.join(toks)!r}")
                if len(toks) == 2 and int(toks[1]) != nframes:
                    self.fail(vln, f"'# FITSTRS #' {' '.join(toks)}: chimes_lsq ignores the number after ALL "
                              f"and fits all 9 stress components of every frame; write 'FIRSTALL {toks[1]}' to "
                              "limit them to the first frames, or plain 'ALL'")
                fit_stress = "all"
            elif word in ("true", "t") and len(toks) == 1:
                fit_stress = "diag"
            elif word in ("false", "f") and len(toks) == 1:
                fit_stress = "none"
            else:
                self.fail(vln, f"'# FITSTRS #' must be false, true, ALL, 'FIRST n' or 'FIRSTALL n', found "
                          f"{' '.join(toks)!r}")
        fit_energy, energy_first = False, None
        vln, toks = self.value("FITENER")
        if toks is not None:
            word = toks[0].lower()
            if word == "first":
                fit_energy, energy_first = True, self.first_count("FITENER", vln, toks)
            elif word in ("true", "t", "false", "f") and len(toks) == 1:
                fit_energy = word in ("true", "t")
            else:
                self.fail(vln, f"'# FITENER #' must be false, true or 'FIRST n', found {' '.join(toks)!r}")

        vln, toks = self.value("PAIRTYP")
        if toks[0] != "CHEBYSHEV":
            self.fail(vln, f"'# PAIRTYP #' must be CHEBYSHEV (the only pair type of chimes_lsq and ChIMES), found "
                      f"{toks[0]!r}")
        if not 2 <= len(toks) <= 6:
            self.fail(vln, f"expected 'CHEBYSHEV O2B [O3B [O4B [low high]]]', found {' '.join(toks)!r}")
        orders = []
        for x in toks[1:4]:
            o = _as_int(x)
            if o is None:
                self.fail(vln, f"PAIRTYP orders must be integers, found {x!r}")
            orders.append(o)
        orders = tuple(orders + [0] * (3 - len(orders)))
        rng = [-1.0, 1.0]
        for k, x in enumerate(toks[4:6]):
            v = _as_float(x)
            if v is None:
                self.fail(vln, f"PAIRTYP Chebyshev range must be numbers, found {x!r}")
            rng[k] = v
        vln, toks = self.value("CHBTYPE")
        cheby_type = "MORSE"
        if toks is not None:
            if len(toks) != 1:
                self.fail(vln, f"'# CHBTYPE #' takes one word (MORSE), found {' '.join(toks)!r}")
            cheby_type = toks[0]
        vln, toks = self.value("CHEBYFIX")
        cheby_fix = DEFAULT_CHEBY_FIX
        if toks is not None:
            if toks[0] == "SMOOTH":
                d = _as_float(toks[1]) if len(toks) == 2 else None
                if d is None:
                    self.fail(vln, f"'# CHEBYFIX #' SMOOTH needs a distance, e.g. 'SMOOTH 0.01'; found "
                              f"{' '.join(toks)!r}")
                cheby_fix = ("SMOOTH", d)
            else:
                cheby_fix = (toks[0], None)
        skip_frames = self.integer("SKPFRMS", 1)
        for key in IGNORED_KEYWORDS:
            self.value(key)

        vln, toks = self.value("FCUTTYP")
        fcut_type, fcut_var = "CUBIC", None
        if toks is not None:
            if toks == ["CUBIC"]:
                pass
            elif toks[0] == "TERSOFF" and len(toks) == 2 and _as_float(toks[1]) is not None:
                fcut_type, fcut_var = "TERSOFF", float(toks[1])
            else:
                self.fail(vln, f"'# FCUTTYP #' must be CUBIC or 'TERSOFF f' (0 < f <= 1), found {' '.join(toks)!r}")

        # ---- atom types
        self.value("NATMTYP")
        symbols, charges, masses = [], [], []
        for j, (rln, t) in enumerate(self.type_rows):
            mass = _as_float(t[3])
            if mass is None:
                self.fail(rln, f"expected a number for the mass of {t[1]}, found {t[3]!r}")
            symbols.append(t[1])
            charges.append(t[2])
            masses.append(mass)
            self.lines[("type", j)] = rln

        # ---- pairs, in canonical order
        canon = canonical_pair_order(symbols)
        index = {tuple(sorted(p)): k for k, p in enumerate(canon)}
        found: dict[int, tuple[int, PairSetup]] = {}
        for rln, t in self.pair_rows:
            a, b = t[1], t[2]
            for sym in (a, b):
                if sym not in symbols:
                    self.fail(rln, f"pair row uses {sym!r}, which is not an atom type ({' '.join(symbols)})")
            k = index[tuple(sorted((a, b)))]
            if k in found:
                self.fail(rln, f"pair {a}{b} is listed twice (also on line {found[k][0]}): every pair of atom "
                          "types needs exactly one row")
            vals = []
            for x, what in zip(t[3:7], ("S_MINIM", "S_MAXIM", "S_DELTA", "MORSE_LAMBDA"), strict=True):
                v = _as_float(x)
                if v is None:
                    self.fail(rln, f"expected a number for {what} of pair {a}{b}, found {x!r}")
                vals.append(v)
            c1, c2 = canon[k]
            found[k] = (rln, PairSetup(c1, c2, s_minim=vals[0], s_maxim=vals[1], morse_lambda=vals[3],
                                       s_delta=vals[2]))
        missing = [a + b for k, (a, b) in enumerate(canon) if k not in found]
        if missing:
            self.fail(self.lines["PAIRIDX"], f"pair(s) {' '.join(missing)} missing from the PAIRIDX table: every "
                      "pair of atom types needs exactly one row")
        pairs = []
        for k in range(len(canon)):
            self.lines[("pair", k)] = found[k][0]
            pairs.append(found[k][1])

        # ---- exclusions
        exclude = {}
        for body, entries in sorted(self.exclude_raw.items()):
            if entries:
                exclude[body] = [tuple(sorted(e)) for _, e in entries]
                for j, (rln, _) in enumerate(entries):
                    self.lines[("exclude", body, j)] = rln

        # ---- trajectories
        if single is not None:
            trajectories = [TrajectorySource(single, nframes)]
        else:
            from .traj_list import read_traj_list

            path = os.path.join(self.base_dir, traj_list)
            if not os.path.isfile(path):
                self.fail(trj_line, f"cannot open the MULTI list {traj_list!r} (looked for {os.path.abspath(path)}): "
                          "the traj_list file is read relative to the folder of the fm_setup file")
            trajectories = read_traj_list(path)
        self.lines["TRJFILE"] = trj_line

        setup = FitSetup(
            types=symbols, charges=charges, masses=masses, pairs=pairs, orders=orders, trajectories=trajectories,
            nframes=nframes, nlayers=nlayers, wrap=wrap, fit_coulomb=fit_coulomb, fit_stress=fit_stress,
            fit_stress_first=stress_first, fit_energy=fit_energy, fit_energy_first=energy_first,
            cheby_type=cheby_type, cheby_range=(rng[0], rng[1]), cheby_fix=cheby_fix, hierarchical=hierarchical,
            exclude=exclude, special=self.special, fcut_type=fcut_type, fcut_var=fcut_var, skip_frames=skip_frames,
            split_files=split_files, charge_constraints=self.charge_constraints, base_dir=self.base_dir,
            source=self.filename, traj_list=traj_list,
        )
        return setup


def parse_fm_setup(text: str, filename: str = "<fm_setup>", base_dir: str = ".", *, allow_coulomb: bool = True,
                   allow_long_manybody: bool = False) -> FitSetup:
    """Parse the text of ``fm_setup.in``; ``base_dir`` is where a MULTI traj_list (and relative paths) live."""
    parser = _Parser(text, filename, os.fspath(base_dir))
    setup = parser.parse()
    validate_fit_setup(setup, parser.lines, allow_coulomb=allow_coulomb, allow_long_manybody=allow_long_manybody)
    return setup


def read_fm_setup(path, *, allow_coulomb: bool = True, allow_long_manybody: bool = False) -> FitSetup:
    """Read ``fm_setup.in``; its folder is the setup's ``base_dir``."""
    path = os.fspath(path)
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise FitSetupError(path, None, f"cannot open the fm_setup file ({exc.strerror})") from exc
    return parse_fm_setup(text, path, os.path.dirname(os.path.abspath(path)), allow_coulomb=allow_coulomb,
                          allow_long_manybody=allow_long_manybody)


# ===================================================================== writing
def needs_multi(setup: FitSetup) -> bool:
    """Whether the training files need a traj_list (``# TRJFILE # MULTI``) rather than a single file name."""
    if setup.traj_list is not None or len(setup.trajectories) != 1:
        return True
    t = setup.trajectories[0]
    return t.temperature is not None or t.label is not None or any(t.flags)


def _bool(x: bool) -> str:
    return "true" if x else "false"


def _range_value(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else _fmt_num(x)


def format_fm_setup(setup: FitSetup) -> str:
    """The ``fm_setup.in`` text of a setup (keywords as ``# KEY #`` with the value on the next line)."""
    s = setup
    out: list[str] = []
    w = out.append

    def kv(key: str, value) -> None:
        w(f"# {key} #")
        w(f"\t{value}")

    w("####### CONTROL VARIABLES #######")
    w("")
    if needs_multi(s):
        kv("TRJFILE", f"MULTI {s.traj_list or DEFAULT_TRAJ_LIST}")
    else:
        kv("TRJFILE", s.trajectories[0].path)
    kv("WRAPTRJ", _bool(s.wrap))
    kv("SPLITFI", _bool(s.split_files))
    kv("HIERARC", _bool(s.hierarchical))
    kv("NFRAMES", s.nframes)
    kv("NLAYERS", s.nlayers)
    kv("FITCOUL", _bool(s.fit_coulomb))
    if s.fit_stress == "none":
        stress = "false"
    elif s.fit_stress == "diag":
        stress = "true" if s.fit_stress_first is None else f"FIRST {s.fit_stress_first}"
    else:
        stress = "ALL" if s.fit_stress_first is None else f"FIRSTALL {s.fit_stress_first}"
    kv("FITSTRS", stress)
    if not s.fit_energy:
        energy = "false"
    else:
        energy = "true" if s.fit_energy_first is None else f"FIRST {s.fit_energy_first}"
    kv("FITENER", energy)
    o2, o3, o4 = s.orders
    lo, hi = s.cheby_range
    kv("PAIRTYP", f"CHEBYSHEV {o2} {o3} {o4} {_range_value(lo)} {_range_value(hi)}")
    kv("CHBTYPE", s.cheby_type)
    if tuple(s.cheby_fix) != DEFAULT_CHEBY_FIX:
        fix, dist = s.cheby_fix
        kv("CHEBYFIX", fix if dist is None else f"{fix} {_fmt_num(dist)}")
    if s.skip_frames != 1:
        kv("SKPFRMS", s.skip_frames)
    w("")
    w("####### TOPOLOGY VARIABLES #######")
    w("")
    for body in sorted(s.exclude):
        entries = s.exclude[body]
        if not entries:
            continue
        w(f"EXCLUDE {body}B INTERACTION: {len(entries)}")
        for e in entries:
            w(" ".join(e))
        w("")
    kv("NATMTYP", len(s.types))
    w("")
    w("# TYPEIDX #\t# ATM_TYP #\t# ATMCHRG #\t# ATMMASS #")
    for i, (sym, charge, mass) in enumerate(zip(s.types, s.charges, s.masses, strict=True)):
        w(f"{i + 1}\t{sym}\t{charge}\t{_fmt_num(mass)}")
    w("")
    w("# PAIRIDX #\t# ATM_TY1 #\t# ATM_TY1 #\t# S_MINIM #\t# S_MAXIM #\t# S_DELTA #\t# MORSE_LAMBDA #")
    for i, p in enumerate(s.pairs):
        w("\t".join([str(i + 1), p.atom1, p.atom2, _fmt_num(p.s_minim), _fmt_num(p.s_maxim), _fmt_num(p.s_delta),
                     _fmt_num(p.morse_lambda)]))
    w("")
    if s.charge_constraints:
        w("CHARGE CONSTRAINTS:")
        out.extend(s.charge_constraints)
        w("")
    for body in ("3B", "4B"):
        for kind in ("S_MINIM", "S_MAXIM"):
            spec = s.special.get((body, kind))
            if spec is None:
                continue
            if spec.mode == "ALL":
                w(f"SPECIAL {body} {kind}: ALL {_fmt_num(spec.value)}")
            else:
                w(f"SPECIAL {body} {kind}: SPECIFIC {len(spec.entries)}")
                for key, names, values in spec.entries:
                    w(" ".join([key, *names, *(_fmt_num(v) for v in values)]))
            w("")
    kv("FCUTTYP", "CUBIC" if s.fcut_type == "CUBIC" else f"{s.fcut_type} {_fmt_num(s.fcut_var)}")
    w("")
    w("# ENDFILE #")
    content = sum(1 for line in out if line.strip())
    if content > MAX_CONTENT_LINES - 1:
        raise FitSetupError(s.source, None, f"the fm_setup text would have {content} non-blank lines; chimes_lsq "
                            f"reads at most {MAX_CONTENT_LINES} before '# ENDFILE #'")
    return "\n".join(out) + "\n"
