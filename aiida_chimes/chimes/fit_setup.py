"""A typed model of a ``chimes_lsq`` fit: the ``fm_setup.in`` input and its training trajectories.

:class:`FitSetup` holds everything ``chimes_lsq`` reads from ``fm_setup.in`` (and ``traj_list.dat`` for
``# TRJFILE # MULTI``) that matters for building the design matrix: atom types, pair cutoffs, polynomial orders,
exclusions, SPECIAL many-body cutoffs, which frames contribute stresses and energies, and the training files.
The text format lives in :mod:`aiida_chimes.chimes.io.fm_setup` (reader/writer) and
:mod:`aiida_chimes.chimes.io.traj_list`; this module holds the model, the validation shared by the reader and by
:func:`make_fit_setup`, and frame iteration.

Semantics follow ``chimes_lsq`` ``src/input.C`` (see ``shared/notes/chimes.md`` section 3).  Every problem is
reported, before any computation, as a :class:`FitSetupError` naming the file, the line and what to do.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field

from .params import SpecialCutoffs

__all__ = [
    "FitSetupError",
    "PairSetup",
    "TrajectorySource",
    "FitSetup",
    "read_fm_setup",
    "make_fit_setup",
    "validate_fit_setup",
    "canonical_pair_order",
]

STRESS_MODES = ("none", "diag", "all")
MANY_BODY = ("3B", "4B")
SPECIAL_KINDS = ("S_MINIM", "S_MAXIM")
#: Distance transformations chimes_lsq knows (``Cheby::get_trans_type``); only MORSE is supported downstream.
CHEBY_TYPES = ("MORSE", "INVRSE_R", "DEFAULT", "NONE")
CHEBY_FIX_TYPES = ("ZERO_DERIV", "CONSTANT_DERIV", "SMOOTH")
DEFAULT_CHEBY_FIX = ("SMOOTH", 0.01)
FCUT_TYPES = ("CUBIC", "TERSOFF")
DEFAULT_TRAJ_LIST = "traj_list.dat"

_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class FitSetupError(ValueError):
    """A chimes_lsq fit setup that cannot be used: says which file, which line and what to do."""

    def __init__(self, filename: str, lineno: int | None, message: str):
        self.filename = filename
        self.lineno = lineno
        self.message = message
        where = f"{filename}:{lineno}" if lineno else f"{filename}"
        super().__init__(f"{where}: {message}")


@dataclass
class PairSetup:
    """One ``# PAIRIDX #`` row: inner/outer cutoff (A), Morse lambda (A) and the (unused) S_DELTA column."""

    atom1: str
    atom2: str
    s_minim: float
    s_maxim: float
    morse_lambda: float
    s_delta: float = 0.01

    @property
    def name(self) -> str:
        return self.atom1 + self.atom2


@dataclass
class TrajectorySource:
    """One training file: a line of ``traj_list.dat`` or the single ``# TRJFILE #`` file."""

    path: str  # as written in the input; relative paths are relative to FitSetup.base_dir
    nframes: int
    temperature: float | None = None  # third field of a 3-field traj_list line
    label: str | None = None  # the optional string field of the 6-field form
    flags: tuple[str, str, str] = ("", "", "")  # force, stress, energy label prefixes ("None" in the file -> "")


@dataclass
class FitSetup:
    """Everything chimes_lsq reads from ``fm_setup.in`` that defines the fit (see the module docstring).

    ``pairs`` are in the canonical chimes_lsq order (like pairs in type order, then cross pairs i < j), with
    ``atom1``/``atom2`` in type order, whatever order the input used.  ``exclude`` maps the body order (1..4) to
    element tuples sorted alphabetically (as chimes_lsq compares them).  ``special`` maps ("3B"|"4B",
    "S_MINIM"|"S_MAXIM") to the setting, with SPECIFIC keys kept exactly as written.
    ``base_dir``, ``source`` and ``traj_list`` (the name of the MULTI list file, if any) do not take part in
    equality.
    """

    types: list[str]
    charges: list[str]  # text: FITCOUL inputs hold a sign (+/-) here
    masses: list[float]
    pairs: list[PairSetup]
    orders: tuple[int, int, int]  # (O2B, O3B, O4B) as in PAIRTYP (O3B/O4B are max power + 1, 0 = off)
    trajectories: list[TrajectorySource]
    nframes: int
    nlayers: int = 1
    wrap: bool = True
    fit_coulomb: bool = False
    fit_stress: str = "none"  # "none" | "diag" | "all"
    fit_stress_first: int | None = None  # FITSTRS FIRST n / FIRSTALL n -> n (global frame count)
    fit_energy: bool = False
    fit_energy_first: int | None = None  # FITENER FIRST n -> n
    cheby_type: str = "MORSE"
    cheby_range: tuple[float, float] = (-1.0, 1.0)
    cheby_fix: tuple[str, float | None] = DEFAULT_CHEBY_FIX
    hierarchical: bool = False
    exclude: dict[int, list[tuple[str, ...]]] = field(default_factory=dict)
    special: dict[tuple[str, str], SpecialCutoffs] = field(default_factory=dict)
    fcut_type: str = "CUBIC"
    fcut_var: float | None = None  # TERSOFF fraction
    skip_frames: int = 1
    split_files: bool = False
    charge_constraints: list[str] = field(default_factory=list)  # raw lines (only meaningful with FITCOUL)
    base_dir: str = field(default=".", compare=False)
    source: str = field(default="<fm_setup>", compare=False)
    traj_list: str | None = field(default=None, compare=False)  # MULTI list file name, relative to base_dir

    # ----------------------------------------------------------------- views
    @property
    def npairs(self) -> int:
        return len(self.pairs)

    def _check_frame(self, frame_index: int) -> None:
        if not 0 <= frame_index < self.nframes:
            raise IndexError(f"frame index {frame_index} outside 0..{self.nframes - 1} (NFRAMES {self.nframes})")

    def stress_mode(self, frame_index: int) -> str:
        """"none", "diag" (xx yy zz) or "all" (9 components) for a global 0-based frame index."""
        self._check_frame(frame_index)
        if self.fit_stress == "none":
            return "none"
        if self.fit_stress_first is not None and frame_index >= self.fit_stress_first:
            return "none"
        return self.fit_stress

    def fits_energy(self, frame_index: int) -> bool:
        """Whether the energy of this global 0-based frame index enters the fit."""
        self._check_frame(frame_index)
        if not self.fit_energy:
            return False
        return self.fit_energy_first is None or frame_index < self.fit_energy_first

    def pair_index(self, a: str, b: str) -> int:
        """Index of the pair type a-b (either order) in :attr:`pairs`."""
        for i, p in enumerate(self.pairs):
            if (p.atom1, p.atom2) in ((a, b), (b, a)):
                return i
        raise KeyError(f"no pair type {a}-{b} (atom types {' '.join(self.types)})")

    def trajectory_paths(self) -> list[str]:
        """Absolute paths of the training files, in order."""
        return [os.path.abspath(os.path.join(self.base_dir, t.path)) for t in self.trajectories]

    def iter_frames(self):
        """Yield ``(global_index, TrajectorySource, XyzfFrame)`` for every training frame, in order.

        Files are read one at a time, when reached.  Only the first ``nframes`` frames of each file are used;
        a file holding fewer raises :class:`FitSetupError` naming it.
        """
        from .io.xyzf import read_xyzf

        index = 0
        for src, path in zip(self.trajectories, self.trajectory_paths(), strict=True):
            if src.nframes < 1:
                continue
            if not os.path.isfile(path):
                raise FitSetupError(path, None, f"training file not found (listed as {src.path!r} by {self.source}; "
                                    f"relative paths are relative to {self.base_dir})")
            frames = read_xyzf(path)
            if len(frames) < src.nframes:
                raise FitSetupError(path, None, f"holds {len(frames)} frames but {src.nframes} are requested by "
                                    f"{self.source}: fix the frame count (NFRAMES or the traj_list line) or the file")
            for frame in frames[: src.nframes]:
                yield index, src, frame
                index += 1
            del frames

    # ----------------------------------------------------------------- I/O
    @classmethod
    def from_file(cls, path, **kwargs) -> FitSetup:
        return read_fm_setup(path, **kwargs)

    def to_string(self) -> str:
        """The ``fm_setup.in`` text (a MULTI setup refers to :attr:`traj_list`, written by :meth:`write`)."""
        from .io.fm_setup import format_fm_setup

        return format_fm_setup(self)

    def write(self, path) -> None:
        """Write ``fm_setup.in`` to ``path`` and, for a MULTI setup, the traj_list file next to it."""
        from .io.fm_setup import needs_multi
        from .io.traj_list import write_traj_list

        path = os.fspath(path)
        text = self.to_string()
        if needs_multi(self):
            name = self.traj_list or DEFAULT_TRAJ_LIST
            write_traj_list(os.path.join(os.path.dirname(path) or ".", name), self.trajectories)
        with open(path, "w") as handle:
            handle.write(text)

    def validate(self, *, allow_coulomb: bool = True, allow_long_manybody: bool = False) -> None:
        """Raise :class:`FitSetupError` if the setup is not usable (see :func:`validate_fit_setup`)."""
        validate_fit_setup(self, allow_coulomb=allow_coulomb, allow_long_manybody=allow_long_manybody)


# ===================================================================== helpers
def canonical_pair_order(types: list[str]) -> list[tuple[str, str]]:
    """chimes_lsq pair order: like pairs in type order, then cross pairs (i, j), i < j, in type order."""
    like = [(t, t) for t in types]
    cross = [(types[i], types[j]) for i in range(len(types)) for j in range(i + 1, len(types))]
    return like + cross


def _fmt_num(x: float) -> str:
    return repr(float(x))


def _slots(nbody: int) -> list[tuple[int, int]]:
    return [(u, v) for u in range(nbody) for v in range(u + 1, nbody)]


def _split_symbols(text: str, symbols: list[str], count: int) -> list[tuple[str, ...]]:
    """Every way of writing ``text`` as ``count`` atom-type symbols."""
    out: list[tuple[str, ...]] = []

    def rec(pos: int, acc: list[str]) -> None:
        if len(acc) == count:
            if pos == len(text):
                out.append(tuple(acc))
            return
        for s in symbols:
            if text.startswith(s, pos):
                rec(pos + len(s), [*acc, s])

    rec(0, [])
    return out


def _cluster_of_key(key: str, symbols: list[str], nbody: int):
    """(sorted atoms, unordered key pairs) of a SPECIAL key, or None when no cluster has that key."""
    npair = nbody * (nbody - 1) // 2
    slots = _slots(nbody)
    for split in _split_symbols(key, symbols, 2 * npair):
        pairs = [tuple(sorted(split[2 * k: 2 * k + 2])) for k in range(npair)]
        for atoms in itertools.product(symbols, repeat=nbody):
            if all(tuple(sorted((atoms[u], atoms[v]))) == pairs[k] for k, (u, v) in enumerate(slots)):
                return tuple(sorted(atoms)), pairs
    return None


def _example_key(types: list[str], nbody: int) -> str:
    atoms = [types[0]] * (nbody - 1) + [types[-1]]
    names = {tuple(sorted(p)): p[0] + p[1] for p in canonical_pair_order(types)}
    return "".join(names[tuple(sorted((atoms[u], atoms[v])))] for u, v in _slots(nbody))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# ===================================================================== validation
def validate_fit_setup(s: FitSetup, lines: dict | None = None, *, allow_coulomb: bool = True,
                       allow_long_manybody: bool = False) -> None:
    """Check a :class:`FitSetup`; raise :class:`FitSetupError` (file, line from ``lines``, fix) on the first problem.

    ``lines`` maps items to line numbers of the source file (the reader fills it; ``make_fit_setup`` has none).
    ``allow_coulomb=False`` refuses ``FITCOUL true`` (charge fitting) with a clear message;
    ``allow_long_manybody`` accepts SPECIAL many-body outer cutoffs longer than the 2-body ones.
    """
    lines = lines or {}

    def fail(key, message: str):
        raise FitSetupError(s.source, lines.get(key), message)

    # ---------------------------------------------------------------- atom types
    if not s.types:
        fail("NATMTYP", "no atom types: give '# NATMTYP #' and the '# TYPEIDX #' table")
    if not len(s.types) == len(s.charges) == len(s.masses):
        fail("TYPEIDX", f"{len(s.types)} atom types but {len(s.charges)} charges and {len(s.masses)} masses")
    seen: dict[str, int] = {}
    for i, sym in enumerate(s.types):
        if not isinstance(sym, str) or not _SYMBOL.match(sym):
            fail(("type", i), f"atom type symbol {sym!r} is not valid: use an element symbol such as C or Cl")
        if sym in seen:
            fail(("type", i), f"atom type {sym} is listed twice (types {seen[sym] + 1} and {i + 1}): "
                 "each atom type must appear once in the TYPEIDX table")
        seen[sym] = i
        if not _finite(s.masses[i]) or s.masses[i] <= 0:
            fail(("type", i), f"mass of {sym} must be a positive number, found {s.masses[i]!r}")
    if s.fit_coulomb and not allow_coulomb:
        fail("FITCOUL", "FITCOUL true: charge fitting is not accepted here; set FITCOUL false and zero charges "
             "(0.0 in the ATMCHRG column of the TYPEIDX table)")
    if s.fit_coulomb and (s.fit_stress != "none" or bool(s.fit_energy)):
        fail("FITCOUL", "FITCOUL true fits forces only: chimes_lsq writes the charge-product columns in force rows "
             "but not in stress or energy rows, so set FITSTRS false and FITENER false (or FITCOUL false)")
    if not s.fit_coulomb:
        for i, (sym, charge) in enumerate(zip(s.types, s.charges, strict=True)):
            try:
                q = float(charge)
            except (TypeError, ValueError):
                fail(("type", i), f"charge {charge!r} of {sym} is not a number: with FITCOUL false the ATMCHRG "
                     "column holds fixed charges; write 0.0")
            if q != 0.0:
                fail(("type", i), f"non-zero fixed charge {charge} for {sym}: chimes_lsq would subtract Ewald "
                     "Coulomb forces, which is not implemented; set the charge to 0.0")

    # ---------------------------------------------------------------- polynomial settings
    orders = tuple(s.orders)
    if len(orders) != 3 or not all(_is_int(o) for o in orders):
        fail("PAIRTYP", f"orders must be three integers (O2B, O3B, O4B), found {s.orders!r}")
    o2, o3, o4 = orders
    if o2 < 1 or o3 < 0 or o4 < 0:
        fail("PAIRTYP", f"polynomial orders must be O2B >= 1, O3B >= 0, O4B >= 0; found {o2} {o3} {o4} "
             "(PAIRTYP: CHEBYSHEV O2B [O3B [O4B]])")
    if o4 > 0 and o3 == 0:
        fail("PAIRTYP", f"4-body order O4B = {o4} needs 3-body terms too, but O3B = 0: set O3B > 0 or O4B = 0")
    lo, hi = s.cheby_range
    if not (_finite(lo) and _finite(hi)) or lo != int(lo) or hi != int(hi) or not -1 <= lo < hi <= 1:
        fail("PAIRTYP", f"Chebyshev range must be two integers -1 <= low < high <= 1 (chimes_lsq reads them as "
             f"integers), found {lo} {hi}")
    if s.cheby_type not in CHEBY_TYPES:
        fail("CHBTYPE", f"unknown CHBTYPE {s.cheby_type!r}: chimes_lsq knows {', '.join(CHEBY_TYPES)}; use MORSE")
    if s.cheby_type != "MORSE":
        fail("CHBTYPE", f"CHBTYPE {s.cheby_type} is not supported: the ChIMES calculator uses the MORSE "
             "transformation only; set '# CHBTYPE #' to MORSE")
    fix, dist = s.cheby_fix
    if fix not in CHEBY_FIX_TYPES:
        fail("CHEBYFIX", f"unknown CHEBYFIX {fix!r}: chimes_lsq knows {', '.join(CHEBY_FIX_TYPES)}; use 'SMOOTH 0.01'")
    if fix != "SMOOTH":
        fail("CHEBYFIX", f"CHEBYFIX {fix} is not supported: the ChIMES calculator extrapolates below the inner "
             "cutoff with SMOOTH only; use 'SMOOTH 0.01' (the default) or remove the keyword")
    if not _finite(dist) or dist <= 0:
        fail("CHEBYFIX", f"CHEBYFIX SMOOTH distance must be a positive number, found {dist!r}")

    # ---------------------------------------------------------------- pairs
    expected = canonical_pair_order(list(s.types))
    got = [(p.atom1, p.atom2) for p in s.pairs]
    if got != expected:
        fail("PAIRIDX", f"pair types must be {' '.join(a + b for a, b in expected)} (one per pair of atom types, "
             f"in chimes_lsq order), found {' '.join(a + b for a, b in got) or 'none'}; make_fit_setup and the "
             "fm_setup reader sort them for you")
    for i, p in enumerate(s.pairs):
        for what in ("s_minim", "s_maxim", "morse_lambda", "s_delta"):
            if not _finite(getattr(p, what)):
                fail(("pair", i), f"pair {p.name}: {what.upper()} must be a finite number, "
                     f"found {getattr(p, what)!r}")
        if p.s_minim < 0 or p.s_minim >= p.s_maxim:
            fail(("pair", i), f"pair {p.name}: need 0 <= S_MINIM < S_MAXIM, found S_MINIM {p.s_minim} and "
                 f"S_MAXIM {p.s_maxim}")
        if p.morse_lambda <= 0:
            fail(("pair", i), f"pair {p.name}: MORSE_LAMBDA must be positive, found {p.morse_lambda}")

    # ---------------------------------------------------------------- frames
    if not _is_int(s.nlayers) or s.nlayers < 0:
        fail("NLAYERS", f"NLAYERS must be an integer >= 0 (ghost-cell layers), found {s.nlayers!r}")
    if s.fcut_type not in FCUT_TYPES:
        fail("FCUTTYP", f"unknown FCUTTYP {s.fcut_type!r}: use CUBIC or 'TERSOFF f' with 0 < f <= 1")
    if s.fcut_type == "TERSOFF":
        if not _finite(s.fcut_var) or not 0 < s.fcut_var <= 1:
            fail("FCUTTYP", f"the Tersoff cutoff fraction must be in (0, 1], found {s.fcut_var!r}")
    elif s.fcut_var is not None:
        fail("FCUTTYP", f"FCUTTYP CUBIC takes no parameter, found {s.fcut_var!r}")
    if not _is_int(s.skip_frames):
        fail("SKPFRMS", f"SKPFRMS must be an integer, found {s.skip_frames!r}")
    if not s.trajectories:
        fail("TRJFILE", "no training files: give '# TRJFILE #' with a .xyzf file or 'MULTI traj_list.dat'")
    for j, t in enumerate(s.trajectories):
        if not isinstance(t.path, str) or not t.path or any(c.isspace() for c in t.path):
            fail("TRJFILE", f"training file {j + 1}: path {t.path!r} must be non-empty without spaces "
                 "(chimes_lsq splits lines on whitespace)")
        if not _is_int(t.nframes) or t.nframes < 0:
            fail("TRJFILE", f"training file {t.path}: frame count must be an integer >= 0, found {t.nframes!r}")
        if len(t.flags) != 3 or any(not isinstance(f, str) or any(c.isspace() for c in f) for f in t.flags):
            fail("TRJFILE", f"training file {t.path}: flags must be three strings without spaces, found {t.flags!r}")
        if t.temperature is not None and not _finite(t.temperature):
            fail("TRJFILE", f"training file {t.path}: temperature must be a finite number, found {t.temperature!r}")
    if not _is_int(s.nframes) or s.nframes < 0:
        fail("NFRAMES", f"NFRAMES must be an integer >= 0, found {s.nframes!r}")
    total = sum(t.nframes for t in s.trajectories)
    if total != s.nframes:
        listed = " + ".join(str(t.nframes) for t in s.trajectories)
        fail("NFRAMES", f"NFRAMES is {s.nframes} but the training files hold {listed} = {total} frames "
             f"({s.traj_list or 'TRJFILE'}): NFRAMES must equal the sum of the per-file frame counts")
    if s.fit_stress not in STRESS_MODES:
        fail("FITSTRS", f"fit_stress must be one of {', '.join(STRESS_MODES)}, found {s.fit_stress!r}")
    for key, on, first in (("FITSTRS", s.fit_stress != "none", s.fit_stress_first),
                           ("FITENER", bool(s.fit_energy), s.fit_energy_first)):
        if first is None:
            continue
        if not on:
            fail(key, f"{key}: a FIRST frame count ({first}) is given but the fit is off")
        if not _is_int(first) or first < 1:
            fail(key, f"{key} FIRST n: n must be an integer >= 1, found {first!r} (use false to fit none)")
        if first > s.nframes:
            fail(key, f"{key} FIRST {first} is larger than NFRAMES {s.nframes}: it counts frames over all "
                 "training files; lower it or use true/ALL for every frame")
    if not isinstance(s.fit_energy, bool):
        fail("FITENER", f"fit_energy must be true or false, found {s.fit_energy!r}")

    # ---------------------------------------------------------------- exclusions
    symbols = list(s.types)
    for body in sorted(s.exclude):
        if body not in (1, 2, 3, 4):
            fail(("exclude", body), f"EXCLUDE body order must be 1, 2, 3 or 4, found {body!r}")
        if body in (1, 2) and s.exclude[body] and not s.hierarchical:
            fail(("exclude", body), f"EXCLUDE {body}B INTERACTION is honoured by chimes_lsq only in hierarchical "
                 "fits (it would silently ignore it here): set '# HIERARC #' true, or remove the block")
        done: dict[tuple[str, ...], int] = {}
        for j, entry in enumerate(s.exclude[body]):
            entry = tuple(entry)
            if len(entry) != body:
                fail(("exclude", body, j), f"EXCLUDE {body}B entry {' '.join(entry)!r} must list {body} element "
                     f"symbol{'s' if body > 1 else ''}")
            for sym in entry:
                if sym not in symbols:
                    fail(("exclude", body, j), f"EXCLUDE {body}B entry {' '.join(entry)!r}: element {sym!r} is "
                         f"not an atom type ({' '.join(symbols)})")
            if entry != tuple(sorted(entry)):
                fail(("exclude", body, j), f"EXCLUDE {body}B entry {entry} must be sorted alphabetically "
                     "(make_fit_setup and the reader sort them)")
            if entry in done:
                fail(("exclude", body, j), f"EXCLUDE {body}B entry {' '.join(entry)} is listed twice")
            done[entry] = j

    # ---------------------------------------------------------------- SPECIAL cutoffs
    pair_of = {tuple(sorted((p.atom1, p.atom2))): p for p in s.pairs}
    for (body, kind), spec in sorted(s.special.items()):
        hk = ("special", body, kind)
        if body not in MANY_BODY or kind not in SPECIAL_KINDS:
            fail(hk, f"SPECIAL settings are keyed ('3B'|'4B', 'S_MINIM'|'S_MAXIM'), found {(body, kind)!r}")
        nbody = 3 if body == "3B" else 4
        order = o3 if nbody == 3 else o4
        if order == 0:
            fail(hk, f"SPECIAL {body} {kind} given but {nbody}-body terms are off (O{nbody}B = 0 in PAIRTYP): "
                 f"remove it or turn {nbody}-body terms on")
        if spec.mode == "ALL":
            if s.hierarchical:
                fail(hk, f"SPECIAL {body} {kind}: ALL cannot be used with HIERARC true (it would also set the "
                     f"cutoffs of the clusters fitted in other tiles); use 'SPECIFIC N' listing the non-excluded "
                     f"{nbody}-body clusters")
            if not _finite(spec.value) or spec.value < 0:
                fail(hk, f"SPECIAL {body} {kind}: ALL needs a non-negative cutoff, found {spec.value!r}")
            for p in s.pairs:
                _check_special_value(fail, hk, body, kind, f"ALL {spec.value}", p, spec.value,
                                     allow_long_manybody)
            continue
        if spec.mode != "SPECIFIC":
            fail(hk, f"SPECIAL {body} {kind}: mode must be ALL or SPECIFIC, found {spec.mode!r}")
        npair = nbody * (nbody - 1) // 2
        clusters: dict[tuple[str, ...], int] = {}
        for j, entry in enumerate(spec.entries):
            ek = ("special", body, kind, j)
            key, names, values = entry
            if len(names) != npair or len(values) != npair:
                fail(ek, f"SPECIAL {body} {kind} entry {key}: needs {npair} pair names and {npair} cutoffs")
            found = _cluster_of_key(key, symbols, nbody)
            if found is None:
                fail(ek, f"SPECIAL {body} {kind} entry: {key!r} is not the key of a {nbody}-body cluster of "
                     f"{' '.join(symbols)}: the key is the {npair} pair names of the cluster concatenated "
                     f"(atom pairs 12 13 {'23' if nbody == 3 else '14 23 24 34'}), e.g. {_example_key(symbols, nbody)}")
            atoms, key_pairs = found
            listed = []
            for nm in names:
                options = [tuple(sorted(x)) for x in _split_symbols(nm, symbols, 2)]
                if not options:
                    fail(ek, f"SPECIAL {body} {kind} entry {key}: {nm!r} is not a pair of atom types "
                         f"({' '.join(symbols)})")
                listed.append(options[0])
            if Counter(listed) != Counter(key_pairs):
                fail(ek, f"SPECIAL {body} {kind} entry {key}: the pair names listed ({' '.join(names)}) are not "
                     f"the pairs of the cluster {' '.join(atoms)} ({' '.join(a + b for a, b in key_pairs)}); list "
                     "each pair of the key once, in any order, followed by its cutoff")
            if atoms in clusters:
                fail(ek, f"SPECIAL {body} {kind}: cluster {' '.join(atoms)} is given twice (entries "
                     f"{clusters[atoms] + 1} and {j + 1})")
            clusters[atoms] = j
            for pr, v in zip(listed, values, strict=True):
                _check_special_value(fail, ek, body, kind, f"entry {key}", pair_of[pr], v, allow_long_manybody)

    # ---------------------------------------------------------------- charge constraints
    # (with FITCOUL false chimes_lsq ignores them, as the official fitstrs input shows; so do we)
    if s.charge_constraints:
        npairs = len(s.pairs)
        if len(s.charge_constraints) != npairs - 1:
            fail("CHARGE CONSTRAINTS", f"CHARGE CONSTRAINTS needs NPAIR-1 = {npairs - 1} lines, found "
                 f"{len(s.charge_constraints)}")
        names = {}
        for k, pr in enumerate(s.pairs):
            names[pr.atom1 + pr.atom2] = names[pr.atom2 + pr.atom1] = k
        for j, line in enumerate(s.charge_constraints):
            fields = line.split()
            if len(fields) != 2 * npairs + 1:
                fail(("charge", j), f"charge constraint {line!r} must have {2 * npairs + 1} fields "
                     f"({npairs} pair names, {npairs} coefficients, the value)")
            listed = [names.get(nm) for nm in fields[:npairs]]
            if None in listed or len(set(listed)) != npairs:
                fail(("charge", j), f"charge constraint {line!r}: the first {npairs} fields must name every pair "
                     f"type once (pairs: {' '.join(pr.atom1 + pr.atom2 for pr in s.pairs)})")
            for v in fields[npairs:]:
                try:
                    float(v)
                except ValueError:
                    fail(("charge", j), f"charge constraint {line!r}: {v!r} is not a number")


def _check_special_value(fail, key, body, kind, what, pair: PairSetup, value, allow_long_manybody):
    if not _finite(value) or value < 0:
        fail(key, f"SPECIAL {body} {kind} {what}: cutoff for {pair.name} must be a non-negative number, "
             f"found {value!r}")
    if kind == "S_MAXIM":
        if value > pair.s_maxim and not allow_long_manybody:
            fail(key, f"SPECIAL {body} S_MAXIM {what}: {value} for pair {pair.name} is larger than its 2-body "
                 f"S_MAXIM {pair.s_maxim}: many-body cutoffs longer than the 2-body ones are not supported by "
                 "ChIMES; lower it or raise the 2-body cutoff")
        if value <= pair.s_minim:
            fail(key, f"SPECIAL {body} S_MAXIM {what}: {value} for pair {pair.name} is not above its S_MINIM "
                 f"{pair.s_minim}")
    elif value >= pair.s_maxim:
        fail(key, f"SPECIAL {body} S_MINIM {what}: {value} for pair {pair.name} is not below its S_MAXIM "
             f"{pair.s_maxim}")


# ===================================================================== construction
def read_fm_setup(path, *, allow_coulomb: bool = True, allow_long_manybody: bool = False) -> FitSetup:
    """Read ``fm_setup.in`` (and its MULTI traj_list, relative to the file's folder) into a validated setup.

    ``allow_coulomb=True`` accepts ``FITCOUL true`` (sets ``fit_coulomb`` and keeps the charge signs as text);
    ``allow_long_manybody=True`` accepts SPECIAL many-body S_MAXIM values above the 2-body S_MAXIM.
    """
    from .io.fm_setup import read_fm_setup as _read

    return _read(path, allow_coulomb=allow_coulomb, allow_long_manybody=allow_long_manybody)


def _count_xyzf_frames(path: str) -> int:
    """Number of frames in an .xyzf file (counts headers only)."""
    count = 0
    with open(path) as handle:
        lines = handle.read().splitlines()
    pos = 0
    while pos < len(lines):
        if not lines[pos].strip():
            pos += 1
            continue
        try:
            natoms = int(lines[pos].split()[0])
        except (ValueError, IndexError):
            raise FitSetupError(path, pos + 1, f"expected the number of atoms of a frame, found "
                                f"{lines[pos].strip()!r}") from None
        count += 1
        pos += natoms + 2
    return count


def make_fit_setup(types, pairs, orders, trajectories, **kwargs) -> FitSetup:
    """Build a validated :class:`FitSetup` from Python arguments.

    ``types``: symbols, or ``(symbol, charge, mass)`` tuples (plain symbols get charge "0.0" and the ASE mass).
    ``pairs``: ``{("C", "N"): dict(s_minim=, s_maxim=, morse_lambda=[, s_delta=]), ...}`` (keys in either order;
    values may also be :class:`PairSetup`) or a list of :class:`PairSetup`; reordered to chimes_lsq order.
    ``orders``: ``(O2B[, O3B[, O4B]])``.  ``trajectories``: paths (frames are counted in the file, relative to
    ``base_dir``), ``(path, nframes[, temperature])`` tuples or :class:`TrajectorySource`; ``nframes`` is their sum.
    ``exclude`` entries may be tuples or space-separated strings ("C", "C C N"); they are sorted.
    ``special`` values may be :class:`SpecialCutoffs`, a number (ALL) or a list of ``(key, pair_names, cutoffs)``
    (SPECIFIC).
    Other keyword arguments are :class:`FitSetup` fields; ``allow_coulomb`` and ``allow_long_manybody`` are passed
    to :func:`validate_fit_setup`.
    """
    allow_coulomb = kwargs.pop("allow_coulomb", True)
    allow_long = kwargs.pop("allow_long_manybody", False)
    source = kwargs.pop("source", "<make_fit_setup>")
    base_dir = os.fspath(kwargs.pop("base_dir", "."))

    def fail(message: str):
        raise FitSetupError(source, None, message)

    symbols, charges, masses = [], [], []
    for t in types:
        if isinstance(t, str):
            from ase.data import atomic_masses, atomic_numbers

            if t not in atomic_numbers:
                fail(f"atom type {t!r} is not an element symbol: give (symbol, charge, mass)")
            symbols.append(t)
            charges.append("0.0")
            masses.append(float(atomic_masses[atomic_numbers[t]]))
        else:
            sym, charge, mass = t
            symbols.append(sym)
            charges.append(charge if isinstance(charge, str) else _fmt_num(charge))
            masses.append(float(mass))

    given: dict[tuple[str, str], PairSetup] = {}
    items = pairs.items() if isinstance(pairs, dict) else [((p.atom1, p.atom2), p) for p in pairs]
    for (a, b), v in items:
        k = tuple(sorted((a, b)))
        if k in given:
            fail(f"pair {a}-{b} is given twice")
        if isinstance(v, PairSetup):
            v = dict(s_minim=v.s_minim, s_maxim=v.s_maxim, morse_lambda=v.morse_lambda, s_delta=v.s_delta)
        given[k] = PairSetup(a, b, **v)
    canon = []
    for a, b in canonical_pair_order(symbols):
        p = given.pop(tuple(sorted((a, b))), None)
        if p is None:
            fail(f"missing pair {a}-{b}: give one entry for every pair of atom types")
        canon.append(PairSetup(a, b, float(p.s_minim), float(p.s_maxim), float(p.morse_lambda), float(p.s_delta)))
    if given:
        fail(f"pairs {', '.join('-'.join(k) for k in given)} use elements that are not atom types ({symbols})")

    orders = tuple(orders) + (0,) * (3 - len(tuple(orders)))

    sources = []
    for t in trajectories:
        if isinstance(t, TrajectorySource):
            sources.append(t)
        elif isinstance(t, (tuple, list)):
            sources.append(TrajectorySource(os.fspath(t[0]), *t[1:]))
        else:
            p = os.fspath(t)
            full = os.path.join(base_dir, p)
            if not os.path.isfile(full):
                fail(f"training file {full} not found (frames are counted in it)")
            sources.append(TrajectorySource(p, _count_xyzf_frames(full)))
    total = sum(t.nframes for t in sources)
    if "nframes" in kwargs and kwargs["nframes"] != total:
        fail(f"nframes={kwargs['nframes']} but the training files hold {total} frames")
    kwargs.pop("nframes", None)

    exclude = {}
    for body, entries in dict(kwargs.pop("exclude", {}) or {}).items():
        norm = [tuple(sorted(e.split() if isinstance(e, str) else e)) for e in entries]
        if norm:
            exclude[int(body)] = norm
    special = {}
    for key, v in dict(kwargs.pop("special", {}) or {}).items():
        if isinstance(v, SpecialCutoffs):
            special[tuple(key)] = v
        elif isinstance(v, (int, float)):
            special[tuple(key)] = SpecialCutoffs("ALL", float(v))
        else:
            special[tuple(key)] = SpecialCutoffs(
                "SPECIFIC", entries=[(k, tuple(n), tuple(float(x) for x in c)) for k, n, c in v])
    for key in ("cheby_range", "cheby_fix"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    for key in ("fcut_var",):
        if kwargs.get(key) is not None:
            kwargs[key] = float(kwargs[key])
    setup = FitSetup(types=symbols, charges=charges, masses=masses, pairs=canon, orders=orders,
                     trajectories=sources, nframes=total, exclude=exclude, special=special, base_dir=base_dir,
                     source=source, **kwargs)
    validate_fit_setup(setup, allow_coulomb=allow_coulomb, allow_long_manybody=allow_long)
    return setup
