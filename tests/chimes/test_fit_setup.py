"""The chimes_lsq input ``fm_setup.in`` as a typed :class:`FitSetup`: official inputs, round trips, validation.

Data: ``tests/data/fm_setup/<case>/`` holds verbatim copies of the official inputs (see the README there).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from aiida_chimes.chimes.fit_setup import (
    FitSetup,
    FitSetupError,
    PairSetup,
    TrajectorySource,
    make_fit_setup,
    read_fm_setup,
)
from aiida_chimes.chimes.io.fm_setup import format_fm_setup, parse_fm_setup
from aiida_chimes.chimes.io.xyzf import XyzfFrame, write_xyzf
from aiida_chimes.chimes.params import SpecialCutoffs
from tests.helpers import DATA_DIR

FM_DIR = DATA_DIR / "fm_setup"


def fm_path(case: str):
    return FM_DIR / case / "fm_setup.in"


def line_of(text: str, marker: str, offset: int = 0) -> int:
    """1-based number of the first line containing ``marker`` (plus ``offset``)."""
    for n, line in enumerate(text.splitlines(), 1):
        if marker in line:
            return n + offset
    raise AssertionError(f"marker {marker!r} not found")


WATER = dict(types=["O", "H"], masses=[15.9994, 1.0079], pairs=["OO", "HH", "OH"])
SPECIAL_CO_3B = SpecialCutoffs("SPECIFIC", entries=[
    ("CCCCCC", ("CC", "CC", "CC"), (4.4, 4.4, 4.4)),
    ("COCOCC", ("CC", "CO", "CO"), (4.4, 4.0, 4.0)),
    ("OOCOCO", ("CO", "CO", "OO"), (4.0, 4.0, 6.5)),
    ("OOOOOO", ("OO", "OO", "OO"), (6.5, 6.5, 6.5)),
])

# expected values; "cut": {pair: (s_minim, s_maxim, lambda)}
CASES = {
    "fitstrs": dict(
        **WATER, charges=["-0.0", "+0.0"], orders=(10, 6, 2), cut={"OO": (0.75, 5.0, 1.25), "OH": (0.75, 5.0, 1.25)},
        nframes=33, traj=[("run_5.OUTCAR.xyzf", 33)], stress=("diag", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2,
    ),
    "h2o-2bcheby": dict(
        **WATER, charges=["-", "+"], orders=(8, 0, 0), cut={"OO": (0.6, 6.0, 1.25), "HH": (0.6, 6.0, 1.25)},
        nframes=99, traj=[("input.xyzf", 99)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, coulomb=True,
    ),
    "h2o-3bcheby": dict(
        **WATER, charges=["-", "+"], orders=(10, 2, 0), cut={"OH": (0.75, 6.0, 1.25)},
        nframes=33, traj=[("input.xyzf", 33)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, coulomb=True,
    ),
    "h2o-4bcheby": dict(
        **WATER, charges=["-", "+"], orders=(10, 6, 2), cut={"HH": (0.75, 5.0, 1.25)},
        nframes=33, traj=[("input.xyzf", 33)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, coulomb=True,
    ),
    "lsq2": dict(
        **WATER, charges=["-", "+"], orders=(10, 6, 2), cut={"OO": (0.75, 5.0, 1.25)},
        nframes=33, traj=[("input.xyzf", 33)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, coulomb=True,
    ),
    "lsq2-split": dict(
        **WATER, charges=["-", "+"], orders=(10, 6, 2), cut={"OO": (0.75, 5.0, 1.25)},
        nframes=33, traj=[("input.xyzf", 33)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, coulomb=True, split=True,
    ),
    "nonorth2": dict(
        types=["C"], masses=[12.0], pairs=["CC"], charges=["0.0"], orders=(12, 0, 0), cut={"CC": (1.0, 3.15, 1.25)},
        nframes=10, traj=[("input.xyzf", 10)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
    ),
    "special3b": dict(
        types=["C", "O"], masses=[12.011, 15.999], pairs=["CC", "OO", "CO"], charges=["0.0", "0.0"],
        orders=(12, 5, 0), cut={"CC": (0.988, 8.0, 1.35), "OO": (0.911, 8.0, 2.55), "CO": (0.876, 8.0, 1.15)},
        nframes=100, traj=[("9350.combine-scs-2-a.fit.xyzf", 100)], stress=("none", None), energy=(False, None),
        fcut=("CUBIC", None), special={("3B", "S_MAXIM"): SPECIAL_CO_3B},
    ),
    "special4b": dict(
        **WATER, charges=["0", "0"], orders=(14, 3, 2),
        cut={"OO": (1.9, 5.0, 1.75), "HH": (0.9, 5.0, 1.25), "OH": (0.7, 5.0, 1.25)},
        nframes=20, traj=[("input.xyzf", 20)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
        nconstraints=2, long_manybody=True,
        special={
            ("3B", "S_MAXIM"): SpecialCutoffs("SPECIFIC", entries=[
                ("OOOOOO", ("OO", "OO", "OO"), (6.0, 6.0, 6.0)),
                ("OOOHOH", ("OH", "OH", "OO"), (4.0, 4.0, 6.0)),
            ]),
            ("4B", "S_MAXIM"): SpecialCutoffs("SPECIFIC", entries=[
                ("OOOOOOOOOOOO", ("OO",) * 6, (4.0,) * 6),
                ("OOOOOHOOOHOH", ("OH", "OH", "OH", "OO", "OO", "OO"), (2.0, 2.0, 2.0, 4.0, 4.0, 4.0)),
                ("OOOHOHOHOHHH", ("HH", "OH", "OH", "OH", "OH", "OO"), (3.0, 4.0, 4.0, 4.0, 4.0, 4.0)),
            ]),
        },
    ),
    "stress-and-ener-2b1": dict(
        types=["C", "H", "O"], masses=[12.011, 1.0079, 15.9994], charges=["0", "0", "0"],
        pairs=["CC", "HH", "OO", "CH", "CO", "HO"], orders=(12, 0, 0),
        cut={"CC": (1.1, 8.0, 1.35), "HH": (0.8, 8.0, 0.675), "OO": (2.0, 8.0, 2.55), "CH": (0.8, 8.0, 1.10),
             "CO": (1.1, 8.0, 1.15), "HO": (0.8, 8.0, 0.97)},
        nframes=36, traj=[("phen_res-300F_dt-0.1_fullstress_energy5F.xyzf", 36)], stress=("all", None),
        energy=(True, 5), fcut=("CUBIC", None),
    ),
    "test_4atoms": dict(
        types=["C"], masses=[12.011], pairs=["CC"], charges=["0.0"], orders=(12, 5, 4), cut={"CC": (1.29, 20.0, 1.54)},
        nframes=250, traj=[("dump.xyzf", 250)], stress=("none", None), energy=(False, None), fcut=("CUBIC", None),
    ),
    "two-traj-files": dict(
        types=["C", "O"], masses=[12.011, 15.999], pairs=["CC", "OO", "CO"], charges=["0.0", "0.0"],
        orders=(12, 4, 3), cut={"CC": (1.002, 8.0, 1.35), "OO": (0.986, 8.0, 2.55), "CO": (0.919, 8.0, 1.15)},
        nframes=14, traj=[("064_atoms_9_frames.xyzf", 9), ("128_atoms_5_frames.xyzf", 5)], stress=("none", None),
        energy=(True, None), fcut=("TERSOFF", 0.5), traj_list="traj_list.dat",
        special={("3B", "S_MAXIM"): SPECIAL_CO_3B, ("4B", "S_MAXIM"): SpecialCutoffs("ALL", 5.5)},
    ),
    "al_driver-ALC-0": dict(
        types=["C", "N"], masses=[12.0107, 14.0067], pairs=["CC", "NN", "CN"], charges=["0.0", "0.0"],
        orders=(25, 10, 4), cut={"CC": (0.98, 5.0, 1.4), "NN": (0.86, 8.0, 1.09), "CN": (0.90, 5.0, 1.34)},
        nframes=20, traj=[("20.3percN_3.5gcc.xyzf", 20, 6000.0)], stress=("all", None), energy=(True, None),
        fcut=("TERSOFF", 0.75), hierarchical=True, traj_list="traj_list.dat",
        exclude={1: [("C",), ("N",)], 2: [("C", "C"), ("N", "N")], 3: [("C", "C", "C"), ("N", "N", "N")],
                 4: [("C", "C", "C", "C"), ("N", "N", "N", "N")]},
        special={
            ("3B", "S_MAXIM"): SpecialCutoffs("SPECIFIC", entries=[
                ("CCCNCN", ("CC", "CN", "CN"), (5.0, 5.0, 5.0)),
                ("CNCNNN", ("CN", "CN", "NN"), (5.0, 5.0, 5.0)),
            ]),
            ("4B", "S_MAXIM"): SpecialCutoffs("SPECIFIC", entries=[
                ("CCCCCNCCCNCN", ("CC", "CC", "CN", "CC", "CN", "CN"), (4.5,) * 6),
                ("CCCNCNCNCNNN", ("CC", "CN", "CN", "CN", "CN", "NN"), (4.5,) * 6),
                ("CNCNCNNNNNNN", ("CN", "CN", "CN", "NN", "NN", "NN"), (4.5,) * 6),
            ]),
        },
    ),
}


def relaxed(case: str) -> dict:
    exp = CASES[case]
    return dict(allow_coulomb=exp.get("coulomb", False), allow_long_manybody=exp.get("long_manybody", False))


@pytest.mark.parametrize("case", sorted(CASES))
def test_reference_inputs(case):
    exp = CASES[case]
    path = fm_path(case)
    text = path.read_text()
    if exp.get("coulomb"):  # accepted by default; refused on request (for tools that cannot evaluate charges)
        with pytest.raises(FitSetupError, match="charge fitting is not accepted") as err:
            read_fm_setup(path, allow_coulomb=False)
        assert err.value.lineno == line_of(text, "# FITCOUL #", 1)
    if exp.get("long_manybody"):
        with pytest.raises(FitSetupError, match="larger than its 2-body S_MAXIM") as err:
            read_fm_setup(path)
        assert err.value.lineno == line_of(text, "OOOOOO OO OO OO")
    s = read_fm_setup(path, **relaxed(case))
    assert s.types == exp["types"]
    assert s.masses == exp["masses"]
    assert s.charges == exp["charges"]
    assert s.fit_coulomb is bool(exp.get("coulomb", False))
    assert s.orders == exp["orders"]
    assert s.cheby_range == (-1.0, 1.0)
    assert s.cheby_type == "MORSE" and s.cheby_fix == ("SMOOTH", 0.01)
    assert [p.name for p in s.pairs] == exp["pairs"]
    for name, (rin, rout, lam) in exp["cut"].items():
        p = s.pairs[exp["pairs"].index(name)]
        assert (p.s_minim, p.s_maxim, p.morse_lambda) == (rin, rout, lam)
        assert s.pair_index(p.atom2, p.atom1) == exp["pairs"].index(name)
    assert s.nframes == exp["nframes"]
    got_traj = [(t.path, t.nframes) + ((t.temperature,) if t.temperature is not None else ()) for t in s.trajectories]
    assert got_traj == exp["traj"]
    assert s.traj_list == exp.get("traj_list")
    assert (s.fit_stress, s.fit_stress_first) == exp["stress"]
    assert (s.fit_energy, s.fit_energy_first) == exp["energy"]
    assert (s.fcut_type, s.fcut_var) == exp["fcut"]
    assert s.hierarchical is exp.get("hierarchical", False)
    assert s.split_files is exp.get("split", False)
    assert s.exclude == exp.get("exclude", {})
    assert s.special == exp.get("special", {})
    assert len(s.charge_constraints) == exp.get("nconstraints", 0)
    assert s.nlayers == 1 and s.wrap is True and s.skip_frames == 1
    assert s.base_dir == os.path.abspath(path.parent)
    assert s.trajectory_paths() == [os.path.abspath(path.parent / t[0]) for t in exp["traj"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case, tmp_path):
    s = read_fm_setup(fm_path(case), **relaxed(case))
    out = tmp_path / "fm_setup.in"
    s.write(out)
    back = read_fm_setup(out, **relaxed(case))
    assert back == s
    assert back.to_string() == s.to_string()
    assert (tmp_path / "traj_list.dat").exists() == (s.traj_list is not None)
    # also from the text alone, in the original folder (MULTI lists resolve there)
    again = parse_fm_setup(format_fm_setup(s), "x.in", str(fm_path(case).parent), **relaxed(case))
    assert again == s


def test_written_file_uses_chimes_lsq_syntax():
    s = read_fm_setup(fm_path("al_driver-ALC-0"))
    text = s.to_string()
    lines = text.splitlines()
    assert lines[-1] == "# ENDFILE #"
    for key, value in [("TRJFILE", "MULTI traj_list.dat"), ("NFRAMES", "20"), ("FITSTRS", "ALL"),
                       ("PAIRTYP", "CHEBYSHEV 25 10 4 -1 1"), ("FCUTTYP", "TERSOFF 0.75")]:
        k = lines.index(f"# {key} #")
        assert lines[k + 1].strip() == value
    k = lines.index("# NATMTYP #")
    assert lines[k + 1].split() == ["2"]
    rows = [ln.split() for ln in lines[lines.index(next(x for x in lines if x.startswith("# PAIRIDX #"))) + 1:][:3]]
    assert [r[1] + r[2] for r in rows] == ["CC", "NN", "CN"] and all(len(r) == 7 for r in rows)


def _multi_setup(tmp_path, fitstrs: str, fitener: str, counts=(2, 3, 4)):
    src = fm_path("two-traj-files").read_text()
    listing = [str(len(counts))] + [f"{n} part{k}.xyzf" for k, n in enumerate(counts)]
    (tmp_path / "traj_list.dat").write_text("\n".join(listing) + "\n")
    text = (src.replace("        14\n", f"        {sum(counts)}\n")
            .replace("# FITSTRS #\n        false", f"# FITSTRS #\n        {fitstrs}")
            .replace("# FITENER # \n        true", f"# FITENER # \n        {fitener}"))
    (tmp_path / "fm_setup.in").write_text(text)
    return read_fm_setup(tmp_path / "fm_setup.in")


def test_stress_and_energy_modes_across_multi(tmp_path):
    s = _multi_setup(tmp_path, "FIRSTALL 4", "FIRST 6")
    assert (s.nframes, s.fit_stress, s.fit_stress_first, s.fit_energy_first) == (9, "all", 4, 6)
    assert [s.stress_mode(i) for i in range(9)] == ["all"] * 4 + ["none"] * 5
    assert [s.fits_energy(i) for i in range(9)] == [True] * 6 + [False] * 3
    with pytest.raises(IndexError):
        s.stress_mode(9)

    s = _multi_setup(tmp_path, "first 3", "true")
    assert [s.stress_mode(i) for i in range(9)] == ["diag"] * 3 + ["none"] * 6
    assert all(s.fits_energy(i) for i in range(9))
    s = _multi_setup(tmp_path, "True", "False")
    assert {s.stress_mode(i) for i in range(9)} == {"diag"} and not any(s.fits_energy(i) for i in range(9))
    s = _multi_setup(tmp_path, "all", "false")
    assert {s.stress_mode(i) for i in range(9)} == {"all"}
    for case in ("FIRSTALL 4", "FIRST 3", "ALL"):
        s = _multi_setup(tmp_path, case, "FIRST 2")
        assert FitSetup.from_file(tmp_path / "fm_setup.in") == s
        (tmp_path / case).mkdir()
        s.write(tmp_path / case / "fm_setup.in")
        assert read_fm_setup(tmp_path / case / "fm_setup.in") == s


def test_make_fit_setup_equals_parsed_al_driver():
    parsed = read_fm_setup(fm_path("al_driver-ALC-0"))
    built = make_fit_setup(
        types=[("C", "0.0", 12.0107), ("N", 0.0, 14.0067)],
        pairs={("N", "C"): dict(s_minim=0.90, s_maxim=5.0, morse_lambda=1.34),
               ("N", "N"): dict(s_minim=0.86, s_maxim=8.0, morse_lambda=1.09),
               ("C", "C"): PairSetup("C", "C", 0.98, 5.0, 1.4)},
        orders=(25, 10, 4),
        trajectories=[TrajectorySource("20.3percN_3.5gcc.xyzf", 20, temperature=6000.0)],
        hierarchical=True, fit_stress="all", fit_energy=True, fcut_type="TERSOFF", fcut_var=0.75,
        exclude={1: ["C", "N"], 2: [("C", "C"), ("N", "N")], 3: ["C C C", ("N", "N", "N")],
                 4: [("C",) * 4, ("N",) * 4]},
        special={("3B", "S_MAXIM"): [("CCCNCN", ("CC", "CN", "CN"), (5, 5, 5)),
                                     ("CNCNNN", ("CN", "CN", "NN"), (5, 5, 5))],
                 ("4B", "S_MAXIM"): parsed.special[("4B", "S_MAXIM")]},
    )
    assert built == parsed
    assert [p.name for p in built.pairs] == ["CC", "NN", "CN"]
    with pytest.raises(FitSetupError, match="HIERARC"):
        make_fit_setup(["C", "N"], parsed.pairs, (25, 10, 4), parsed.trajectories, exclude={1: ["C"]})
    with pytest.raises(FitSetupError, match="missing pair"):
        make_fit_setup(["C", "N"], parsed.pairs[:2], (25, 10, 4), parsed.trajectories)


def _frames(n: int, natoms: int, seed: int) -> list[XyzfFrame]:
    rng = np.random.default_rng(seed)
    cell = np.diag([8.0, 8.0, 8.0])
    return [XyzfFrame(["C"] * natoms, rng.uniform(0, 8, (natoms, 3)), cell, rng.normal(size=(natoms, 3)),
                      None, float(-100 - k)) for k in range(n)]


def test_make_fit_setup_counts_frames_and_iterates(tmp_path):
    write_xyzf(tmp_path / "a.xyzf", _frames(3, 4, 1))
    write_xyzf(tmp_path / "b.xyzf", _frames(2, 5, 2))
    s = make_fit_setup(["C"], {("C", "C"): dict(s_minim=1.0, s_maxim=4.0, morse_lambda=1.4)}, (8,),
                       ["a.xyzf", ("b.xyzf", 2)], base_dir=str(tmp_path), fit_energy=True)
    assert s.masses == [pytest.approx(12.011)] and s.charges == ["0.0"] and s.orders == (8, 0, 0)
    assert [(t.path, t.nframes) for t in s.trajectories] == [("a.xyzf", 3), ("b.xyzf", 2)] and s.nframes == 5
    got = [(i, src.path, len(fr.symbols), fr.energy) for i, src, fr in s.iter_frames()]
    assert got == [(0, "a.xyzf", 4, -100.0), (1, "a.xyzf", 4, -101.0), (2, "a.xyzf", 4, -102.0),
                   (3, "b.xyzf", 5, -100.0), (4, "b.xyzf", 5, -101.0)]
    s.write(tmp_path / "fm_setup.in")
    back = read_fm_setup(tmp_path / "fm_setup.in")
    assert back == s and [i for i, _, _ in back.iter_frames()] == [0, 1, 2, 3, 4]

    # only the first nframes of a file are used; a file holding fewer is an error naming it
    s.trajectories[0].nframes = 2
    s.nframes = 4
    assert [(i, src.path) for i, src, _ in s.iter_frames()] == [(0, "a.xyzf"), (1, "a.xyzf"), (2, "b.xyzf"),
                                                                (3, "b.xyzf")]
    s.trajectories[1].nframes = 3
    with pytest.raises(FitSetupError, match="holds 2 frames but 3") as err:
        list(s.iter_frames())
    assert err.value.filename.endswith("b.xyzf")
    s.trajectories[1].path = "missing.xyzf"
    with pytest.raises(FitSetupError, match="not found"):
        list(s.iter_frames())


# ===================================================================== broken inputs
BASE = "al_driver-ALC-0"
ROW1 = "1               C               C"
PAIR1 = ROW1 + "               0.98            5.0"
PAIR3 = "3               C\t\tN               0.90"
EXCL3 = "EXCLUDE 3B INTERACTION: 2\nC C C\nN N N"
SPEC3 = "CCCNCN   CC CN CN 5.0 5.0 5.0"
SPEC3B = "CNCNNN   CN CN NN 5.0 5.0 5.0"

# (name, old, new, marker for the expected line (in the new text; None: no line), line offset, word in message)
BROKEN = [
    ("unknown keyword", "# CHBTYPE #", "# CHBTYP #", "# CHBTYP #", 0, "unknown keyword"),
    ("missing value", "# NLAYERS # \n        1\n", "# NLAYERS # \n", "# NLAYERS #", 0, "missing value"),
    ("text after keyword", "# NLAYERS # \n        1\n", "# NLAYERS # 1\n", "# NLAYERS #", 0, "next line"),
    ("duplicate keyword", "# NLAYERS # \n        1\n", "# NLAYERS # \n 1\n# NLAYERS # \n 1\n", "# NLAYERS #", 2,
     "twice"),
    ("single-hash comment", "# FCUTTYP #", "# see notes\n# FCUTTYP #", "# see notes", 0, "unrecognised line"),
    ("bad ENDFILE marker", "# ENDFILE #", "#\tENDFILE\t#", "ENDFILE", 0, "ENDFILE"),
    ("FITCOUL true with stresses and energies", "# FITCOUL # \n        false", "# FITCOUL # \n        true",
     "# FITCOUL #", 1, "fits forces only"),
    ("non-zero charge", "1\t\tC\t\t0.0", "1\t\tC\t\t0.5", "1\t\tC\t\t0.5", 0, "Ewald"),
    ("charge sign without FITCOUL", "1\t\tC\t\t0.0", "1\t\tC\t\t+", "1\t\tC\t\t+", 0, "not a number"),
    ("not CHEBYSHEV", "CHEBYSHEV 25 10 4 -1 1", "DFTBPOLY 25 10 4", "DFTBPOLY", 0, "CHEBYSHEV"),
    ("O4B without O3B", "CHEBYSHEV 25 10 4", "CHEBYSHEV 25 0 4", "CHEBYSHEV", 0, "O3B"),
    ("O2B zero", "CHEBYSHEV 25 10 4", "CHEBYSHEV 0 10 4", "CHEBYSHEV", 0, "O2B >= 1"),
    ("bad Chebyshev range", "CHEBYSHEV 25 10 4 -1 1", "CHEBYSHEV 25 10 4 1 -1", "CHEBYSHEV", 0, "range"),
    ("CHBTYPE INVRSE_R", "        MORSE\n", "        INVRSE_R\n", "INVRSE_R", 0, "MORSE"),
    ("CHEBYFIX ZERO_DERIV", "# SPLITFI #", "# CHEBYFIX #\n\tZERO_DERIV\n# SPLITFI #", "ZERO_DERIV", 0, "SMOOTH"),
    ("FITSTRS bad word", "\tALL 20", "\tsometimes", "sometimes", 0, "FITSTRS"),
    ("FITSTRS ALL n", "\tALL 20", "\tALL 10", "ALL 10", 0, "FIRSTALL"),
    ("FIRST larger than NFRAMES", "# FITENER # \n        true", "# FITENER # \n        FIRST 30", "FIRST 30", 0,
     "larger than NFRAMES"),
    ("NLAYERS negative", "# NLAYERS # \n        1\n", "# NLAYERS # \n        -1\n", "# NLAYERS #", 1, "NLAYERS"),
    ("NATMTYP too large", "# NATMTYP # \n        2", "# NATMTYP # \n        3", "# PAIRIDX #", 0, "NATMTYP"),
    ("NATMTYP too small", "# NATMTYP # \n        2", "# NATMTYP # \n        1", "2               N", 0, "NATMTYP"),
    ("TYPEIDX index", "2               N", "3               N", "3               N", 0, "index"),
    ("duplicate pair", PAIR3, "3               N\t\tN               0.90", "3               N", 0, "twice"),
    ("missing pair row", PAIR3 + "\t\t5.0\t\t0.01\t\t1.34\t\t\t\n", "", "SPECIAL 3B", 0, "PAIRIDX"),
    ("pair element", PAIR3, "3               C\t\tO               0.90", "3               C", 0, "atom type"),
    ("S_MINIM >= S_MAXIM", PAIR1, PAIR1.replace("0.98", "5.5"), ROW1, 0, "S_MINIM < S_MAXIM"),
    ("lambda negative", "0.01            1.4", "0.01            -1.4", "-1.4", 0, "MORSE_LAMBDA"),
    ("not a number", PAIR1, PAIR1.replace("0.98", "0.9x8"), ROW1, 0, "number"),
    ("EXCLUDE unknown element", EXCL3, EXCL3[:-1] + "X", "N N X", 0, "not an atom type"),
    ("EXCLUDE atom count", EXCL3, "EXCLUDE 3B INTERACTION: 2\nC C\nN N N", "EXCLUDE 3B", 1, "3 element"),
    ("EXCLUDE 1B without HIERARC", "# HIERARC #\t\n\ttrue", "# HIERARC #\t\n\tfalse", "EXCLUDE 1B", 0, "HIERARC"),
    ("SPECIAL ALL with HIERARC", "SPECIAL 4B S_MAXIM: SPECIFIC 3\nCCCCCNCCCNCN    CC CC CN CC CN CN 4.5 4.5 4.5 4.5 "
     "4.5 4.5\nCCCNCNCNCNNN    CC CN CN CN CN NN 4.5 4.5 4.5 4.5 4.5 4.5\nCNCNCNNNNNNN    CN CN CN NN NN NN 4.5 4.5 "
     "4.5 4.5 4.5 4.5\n", "SPECIAL 4B S_MAXIM: ALL 4.5\n", "SPECIAL 4B", 0, "HIERARC"),
    ("SPECIAL invalid key", SPEC3, SPEC3.replace("CCCNCN", "CCCNNN"), "CCCNNN", 0, "not the key"),
    ("SPECIAL unknown element", SPEC3, SPEC3.replace("CCCNCN", "CCCXCX"), "CCCXCX", 0, "not the key"),
    ("SPECIAL listed pairs", SPEC3, SPEC3.replace("CC CN CN", "CC CC CN"), "CC CC CN", 0, "pair names listed"),
    ("SPECIAL duplicate cluster", SPEC3, "NNCNCN   NN CN CN 5.0 5.0 5.0", "CNCNNN", 0, "given twice"),
    ("SPECIAL fields", SPEC3, SPEC3[:-4], "CCCNCN", 0, "fields"),
    ("SPECIAL for body off", "CHEBYSHEV 25 10 4 -1 1", "CHEBYSHEV 25 10 0 -1 1", "SPECIAL 4B", 0, "4-body"),
    ("SPECIAL longer than 2-body", SPEC3B, SPEC3B.replace("5.0 5.0 5.0", "5.0 5.0 9.0"), "CNCNNN", 0,
     "larger than its 2-body"),
    ("SPECIAL mode", "SPECIAL 3B S_MAXIM: SPECIFIC 2", "SPECIAL 3B S_MAXIM: SOME 2", "SPECIAL 3B", 0, "SPECIFIC K"),
    ("Tersoff fraction", "TERSOFF 0.75", "TERSOFF 1.5", "TERSOFF", 0, "Tersoff"),
    ("FCUTTYP unknown", "TERSOFF 0.75", "COSINE", "COSINE", 0, "FCUTTYP"),
    ("MULTI list missing", "MULTI traj_list.dat", "MULTI nothere.dat", "MULTI", 0, "nothere.dat"),
    ("TRJFILE form", "MULTI traj_list.dat", "MANY traj_list.dat", "MANY", 0, "MULTI"),
    ("bad boolean", "# WRAPTRJ # \n        true", "# WRAPTRJ # \n        yes", "# WRAPTRJ #", 1, "true or false"),
    ("missing ENDFILE", "# ENDFILE #", "", None, 0, "ENDFILE"),
    ("missing NFRAMES", "# NFRAMES # \n\t20\n", "", None, 0, "NFRAMES"),
]


@pytest.mark.parametrize("name, old, new, marker, offset, word", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_inputs(tmp_path, name, old, new, marker, offset, word):
    src = fm_path(BASE).read_text()
    assert old in src
    text = src.replace(old, new, 1)
    shutil.copy(FM_DIR / BASE / "traj_list.dat", tmp_path / "traj_list.dat")
    (tmp_path / "fm_setup.in").write_text(text)
    with pytest.raises(FitSetupError) as err:
        read_fm_setup(tmp_path / "fm_setup.in")
    e = err.value
    assert word in e.message, e.message
    assert e.filename == str(tmp_path / "fm_setup.in")
    if name == "missing ENDFILE":
        assert e.lineno == len(text.splitlines())
    elif marker is None:
        assert e.lineno is None
    else:
        assert e.lineno == line_of(text, marker, offset), str(e)
    assert str(e).startswith(f"{e.filename}:{e.lineno}:" if e.lineno else f"{e.filename}:")


def test_unknown_keyword_lists_known_ones(tmp_path):
    text = fm_path(BASE).read_text().replace("# CHBTYPE #", "# CHBTYP #")
    with pytest.raises(FitSetupError) as err:
        parse_fm_setup(text, "f.in", str(FM_DIR / BASE))
    for key in ("# TRJFILE #", "# PAIRTYP #", "# FCUTTYP #", "# ENDFILE #"):
        assert key in err.value.message


def test_nframes_must_match_traj_list(tmp_path):
    (tmp_path / "fm_setup.in").write_text(fm_path(BASE).read_text())
    (tmp_path / "traj_list.dat").write_text("2\n19 a.xyzf 6000\n0 empty.xyzf\n")
    with pytest.raises(FitSetupError, match="NFRAMES is 20 but the training files hold 19") as err:
        read_fm_setup(tmp_path / "fm_setup.in")
    assert err.value.lineno == line_of(fm_path(BASE).read_text(), "# NFRAMES #", 1)
    (tmp_path / "traj_list.dat").write_text("2\n20 a.xyzf 6000\n0 empty.xyzf\n")
    s = read_fm_setup(tmp_path / "fm_setup.in")
    assert [t.path for t in s.trajectories] == ["a.xyzf"]  # zero-frame files are dropped
    (tmp_path / "traj_list.dat").write_text("1\n20 a.xyzf 6000 extra\n")
    with pytest.raises(FitSetupError, match="2, 3, 5 or 6 fields") as err:
        read_fm_setup(tmp_path / "fm_setup.in")
    assert err.value.filename == str(tmp_path / "traj_list.dat") and err.value.lineno == 2


def test_comments_tabs_and_order(tmp_path):
    """Comments, tabs, pair rows in any order, EXCLUDE before NATMTYP, legacy and ignored keys."""
    text = """## a comment line
! another
# TRJFILE #   ! the data
\tdata.xyzf
# NFRAMES #
  5 ! five frames
# USENEIG #
 true SMALL
# CNSCOUL #
 false
# FITPOVR #
 false
# SKPFRMS #
 2
# CHEBYFIX #
 SMOOTH 0.02
# FITSTRS #
 FIRST 2
# FITENER #
 First 3
EXCLUDE 3B INTERACTION: 1
O H H
# PAIRTYP #
\tCHEBYSHEV\t8\t4
# NATMTYP #
 2
# TYPEIDX #
1 H 0 1.0
2 O 0.0 16.0
# PAIRIDX #
1 O H 0.8 5.0 0.1 1.1 false 0 0 0
2 O O 1.0 6.0 0.1 1.2
3 H H 0.6 4.0 0.1 1.0
SPECIAL 3B S_MINIM: ALL 0.5
# ENDFILE #
anything after the end is ignored
"""
    (tmp_path / "in").write_text(text)
    s = read_fm_setup(tmp_path / "in")
    assert s.types == ["H", "O"] and [p.name for p in s.pairs] == ["HH", "OO", "HO"]
    assert s.pairs[2] == PairSetup("H", "O", 0.8, 5.0, 1.1, 0.1)
    assert s.exclude == {3: [("H", "H", "O")]}
    assert (s.skip_frames, s.cheby_fix, s.fit_stress, s.fit_stress_first) == (2, ("SMOOTH", 0.02), "diag", 2)
    assert (s.fit_energy, s.fit_energy_first, s.orders) == (True, 3, (8, 4, 0))
    assert s.special == {("3B", "S_MINIM"): SpecialCutoffs("ALL", 0.5)}
    s.write(tmp_path / "out.in")
    assert read_fm_setup(tmp_path / "out.in") == s
    assert "# SKPFRMS #\n\t2" in s.to_string() and "# CHEBYFIX #\n\tSMOOTH 0.02" in s.to_string()


def test_chimes_lsq_line_limit(tmp_path):
    """chimes_lsq stops after 1000 non-blank lines without ENDFILE: '!' comments are blank, '##' lines are not."""
    text = fm_path("nonorth2").read_text()
    ok = text.replace("# ENDFILE #", "! note\n" * 1200 + "# ENDFILE #")
    assert parse_fm_setup(ok, "ok.in", str(tmp_path)).nframes == 10
    bad = text.replace("# ENDFILE #", "## note\n" * 1000 + "# ENDFILE #")
    with pytest.raises(FitSetupError, match="first 1000 non-blank lines"):
        parse_fm_setup(bad, "bad.in", str(tmp_path))


def test_hand_built_setup_is_checked():
    s = read_fm_setup(fm_path("special3b"))
    s.validate()
    s.pairs = [s.pairs[2], s.pairs[0], s.pairs[1]]
    with pytest.raises(FitSetupError, match="pair types must be CC OO CO"):
        s.validate()
    s = read_fm_setup(fm_path("special3b"))
    s.fit_stress_first = 3
    with pytest.raises(FitSetupError, match="fit is off"):
        s.validate()
    with pytest.raises(KeyError):
        s.pair_index("C", "N")


@pytest.mark.parametrize(("old", "new", "word"), [
    ("OO\tHH\tOH\t1000.0\t\t 4000.0", "OO\tHH\tOC\t1000.0\t\t 4000.0", "must name every pair type once"),
    ("OO\tHH\tOH\t1000.0\t\t 4000.0", "OO\tOO\tOH\t1000.0\t\t 4000.0", "must name every pair type once"),
    ("OO\tHH\tOH\t1000.0\t\t 4000.0", "OO\tHH\tOH\t1000.0\t\t four", "is not a number"),
])
def test_bad_charge_constraints(tmp_path, old, new, word):
    """FITCOUL charge constraints: every pair named once (either atom order), numbers; the error names the line."""
    src = fm_path("h2o-2bcheby").read_text()
    assert old in src
    text = src.replace(old, new, 1)
    (tmp_path / "fm_setup.in").write_text(text)
    with pytest.raises(FitSetupError) as err:
        read_fm_setup(tmp_path / "fm_setup.in")
    assert word in err.value.message
    assert err.value.lineno == line_of(text, new.split("\t\t")[0])


def test_charge_constraint_pair_names_in_either_order(tmp_path):
    src = fm_path("h2o-2bcheby").read_text().replace("OO\tHH\tOH\t1000.0\t\t 4000.0", "OO\tHH\tHO\t1000.0\t\t 4000.0")
    (tmp_path / "fm_setup.in").write_text(src)
    assert read_fm_setup(tmp_path / "fm_setup.in").fit_coulomb
