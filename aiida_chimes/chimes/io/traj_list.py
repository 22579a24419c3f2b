"""Reader and writer of the ``traj_list.dat`` file of ``# TRJFILE # MULTI traj_list.dat``.

Format (``chimes_lsq`` ``src/input.C`` ``PARSE_CONTROLS_TRJFILE``; ``shared/notes/chimes.md`` 3.2)::

    <nfiles>
    <nframes> <path.xyzf> [<temperature>]                      (2 or 3 fields)
    <nframes> <path.xyzf> [<label>] <F_flag> <S_flag> <E_flag>  (5 or 6 fields)

The flags are prefixes of the row labels in ``b-labeled.txt``; ``None`` means no prefix.  Files with fewer than
one frame are dropped, as chimes_lsq does.  Paths are kept as written (relative to the fm_setup folder).
"""

from __future__ import annotations

import math
import os

from ..fit_setup import FitSetupError, TrajectorySource

__all__ = ["read_traj_list", "parse_traj_list", "format_traj_list", "write_traj_list"]


def read_traj_list(path) -> list[TrajectorySource]:
    """The training files listed in a traj_list file (files with nframes < 1 dropped)."""
    path = os.fspath(path)
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise FitSetupError(path, None, f"cannot open the traj_list file ({exc.strerror})") from exc
    return parse_traj_list(text, path)


def parse_traj_list(text: str, filename: str = "<traj_list>") -> list[TrajectorySource]:
    def fail(lineno, message):
        raise FitSetupError(filename, lineno, message)

    items = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.split()]
    if not items:
        fail(None, "empty traj_list: the first line must be the number of files, then one line per file")
    n0, t0 = items[0]
    try:
        nfiles = int(t0[0])
    except ValueError:
        nfiles = None
    if len(t0) != 1 or nfiles is None or nfiles < 0:
        fail(n0, f"the first line must hold only the number of files, found {' '.join(t0)!r}")
    entries = items[1:]
    if len(entries) < nfiles:
        fail(entries[-1][0] if entries else n0, f"the first line announces {nfiles} files but {len(entries)} are "
             "listed: fix the count")
    if len(entries) > nfiles:
        fail(entries[nfiles][0], f"the first line (line {n0}) announces {nfiles} files but more are listed: fix "
             "the count")
    sources = []
    for ln, toks in entries:
        if len(toks) not in (2, 3, 5, 6):
            fail(ln, f"expected '<nframes> <file> [<temperature>]' or '<nframes> <file> [<label>] <F_flag> "
                 f"<S_flag> <E_flag>' (2, 3, 5 or 6 fields), found {len(toks)}: {' '.join(toks)!r}")
        try:
            nframes = int(toks[0])
        except ValueError:
            fail(ln, f"expected the number of frames as the first field, found {toks[0]!r}")
        temperature = label = None
        flags = ("", "", "")
        if len(toks) == 3:
            try:
                temperature = float(toks[2])
            except ValueError:
                temperature = math.nan
            if not math.isfinite(temperature):
                fail(ln, f"the third field of a 3-field line is the temperature (a number), found {toks[2]!r}")
        if len(toks) == 6:
            label = toks[2]
        if len(toks) >= 5:
            flags = tuple("" if f == "None" else f for f in toks[-3:])
        if nframes < 1:
            continue  # chimes_lsq drops files with zero frames
        sources.append(TrajectorySource(toks[1], nframes, temperature, label, flags))
    return sources


def _temperature(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else repr(float(t))


def format_traj_list(sources) -> str:
    lines = [str(len(sources))]
    for s in sources:
        tokens = [str(s.nframes), s.path]
        if s.label is None and not any(s.flags):
            if s.temperature is not None:
                tokens.append(_temperature(s.temperature))
        else:
            if s.temperature is not None:
                raise ValueError(f"{s.path}: a traj_list line cannot hold both a temperature and flags/label "
                                 "(the 5/6-field form has no temperature field)")
            if s.label is not None:
                tokens.append(s.label)
            tokens.extend(f or "None" for f in s.flags)
        for tok in tokens:
            if not tok or any(c.isspace() for c in tok):
                raise ValueError(f"traj_list field {tok!r} of {s.path!r} must be non-empty without spaces")
        lines.append(" ".join(tokens))
    return "\n".join(lines) + "\n"


def write_traj_list(path, sources) -> None:
    """Write a traj_list file that chimes_lsq reads (and :func:`read_traj_list` reads back)."""
    text = format_traj_list(sources)
    with open(os.fspath(path), "w") as handle:
        handle.write(text)
