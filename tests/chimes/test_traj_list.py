"""``traj_list.dat`` (the MULTI list of chimes_lsq training files): reader, writer, forms and errors."""

from __future__ import annotations

import pytest

from aiida_chimes.chimes.fit_setup import FitSetupError, TrajectorySource
from aiida_chimes.chimes.io.traj_list import format_traj_list, parse_traj_list, read_traj_list, write_traj_list
from tests.helpers import DATA_DIR

FM_DIR = DATA_DIR / "fm_setup"


def test_official_lists():
    assert read_traj_list(FM_DIR / "two-traj-files" / "traj_list.dat") == [
        TrajectorySource("064_atoms_9_frames.xyzf", 9), TrajectorySource("128_atoms_5_frames.xyzf", 5)]
    assert read_traj_list(FM_DIR / "al_driver-ALC-0" / "traj_list.dat") == [
        TrajectorySource("20.3percN_3.5gcc.xyzf", 20, temperature=6000.0)]


def test_all_forms_and_none_flags():
    text = ("6\n"
            "3 a.xyzf\n"
            "4\tb.xyzf\t300.5\n"
            "5 c/OUTCAR.xyzf G_ G_ G_\n"
            "6 d.xyzf liquid None S_ None\n"
            "0 skipped.xyzf 1000\n"
            "-2 negative.xyzf None None None\n")
    got = parse_traj_list(text, "list")
    assert got == [
        TrajectorySource("a.xyzf", 3),
        TrajectorySource("b.xyzf", 4, temperature=300.5),
        TrajectorySource("c/OUTCAR.xyzf", 5, flags=("G_", "G_", "G_")),
        TrajectorySource("d.xyzf", 6, label="liquid", flags=("", "S_", "")),
    ]
    out = format_traj_list(got)
    assert out.splitlines() == ["4", "3 a.xyzf", "4 b.xyzf 300.5", "5 c/OUTCAR.xyzf G_ G_ G_",
                                "6 d.xyzf liquid None S_ None"]
    assert parse_traj_list(out) == got


def test_round_trip(tmp_path):
    sources = [TrajectorySource("x.xyzf", 7, temperature=6000.0), TrajectorySource("y.xyzf", 1),
               TrajectorySource("z.xyzf", 2, flags=("F_", "", "E_")),
               TrajectorySource("w.xyzf", 2, label="gas", flags=("", "", ""))]
    write_traj_list(tmp_path / "traj_list.dat", sources)
    assert (tmp_path / "traj_list.dat").read_text().splitlines()[1] == "7 x.xyzf 6000"
    assert read_traj_list(tmp_path / "traj_list.dat") == sources
    with pytest.raises(ValueError, match="both a temperature and flags"):
        format_traj_list([TrajectorySource("x.xyzf", 1, temperature=10.0, flags=("G_", "G_", "G_"))])
    with pytest.raises(ValueError, match="without spaces"):
        format_traj_list([TrajectorySource("a b.xyzf", 1)])


@pytest.mark.parametrize("text, line, word", [
    ("", None, "empty"),
    ("two\n1 a.xyzf\n", 1, "number of files"),
    ("2 3\n1 a.xyzf\n", 1, "number of files"),
    ("2\n1 a.xyzf\n", 2, "announces 2 files but 1"),
    ("1\n1 a.xyzf\n2 b.xyzf\n", 3, "more are listed"),
    ("1\n1 a.xyzf 300 F_\n", 2, "2, 3, 5 or 6 fields"),
    ("1\nmany a.xyzf\n", 2, "number of frames"),
    ("1\n1 a.xyzf hot\n", 2, "temperature"),
])
def test_errors(text, line, word):
    with pytest.raises(FitSetupError) as err:
        parse_traj_list(text, "traj_list.dat")
    assert err.value.lineno == line and word in err.value.message
    assert err.value.filename == "traj_list.dat"


def test_missing_file(tmp_path):
    with pytest.raises(FitSetupError, match="cannot open"):
        read_traj_list(tmp_path / "nothing.dat")
