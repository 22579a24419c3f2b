"""chimes_lsq interop files (:mod:`aiida_chimes.chimes.io.lsq_files`) against the official test-suite outputs.

``params.header`` / ``ff_groups.map`` must be reproduced byte for byte, the solution vector of every test must
map onto exactly the reference ``params.txt`` model, and the solved ``params.txt`` text must be that of
``chimes_lsq.py``.  Data: ``tests/data/chimes_lsq/`` (see its README for the sources).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
from pathlib import Path

import numpy as np
import pytest

from aiida_chimes.chimes.io.lsq_files import (
    column_labels,
    excluded_pairs,
    excluded_types,
    fill_coefficients,
    format_ff_groups_map,
    format_params_header,
    format_solved_params,
    n_columns,
    parse_params_header,
    read_A,
    read_b_labeled,
    read_b_txt,
    read_dim_txt,
    read_force_txt,
    read_natoms_txt,
    read_params_header,
    read_test_suite_params,
    solver_comment_lines,
    with_header_flags,
    write_A,
    write_b_labeled,
    write_b_txt,
    write_dim_txt,
    write_force_txt,
    write_natoms_txt,
    write_test_suite_params,
)
from aiida_chimes.chimes.params import ParamsFormatError, SpecialCutoffs, parse_params
from tests.helpers import DATA_DIR

LSQ_DIR = DATA_DIR / "chimes_lsq"
ALL_TESTS = ["fitstrs", "h2o-2bcheby", "h2o-3bcheby", "h2o-4bcheby", "lsq2", "nonorth2", "special3b", "special4b",
             "stress-and-ener-2b1", "test_4atoms", "two-traj-files"]
SOLVED_TESTS = [t for t in ALL_TESTS if t != "lsq2"]  # lsq2 has solver variants instead of params.txt
FITCOUL_TESTS = {"h2o-2bcheby", "h2o-3bcheby", "h2o-4bcheby", "lsq2"}
LSQ2_VARIANTS = ["dlars.1.0e-04", "dlasso.read", "lassolars.1.0e-04", "ridge.1.0e-03", "ridgecv", "svd.1.0e-05",
                 "svd.weight"]


def _path(test: str, name: str) -> Path:
    """A reference file, stored as is or as ``<name>.gz``."""
    p = LSQ_DIR / test / "correct_output" / name
    return p if p.exists() else p.with_name(name + ".gz")


def _text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as fh:
            return fh.read()
    return path.read_text()


def _header_map(test: str) -> tuple[str, str]:
    map_test = "h2o-4bcheby" if test == "lsq2" else test  # lsq2 ships no map (same model as h2o-4bcheby)
    return _text(_path(test, "params.header")), _text(_path(map_test, "ff_groups.map"))


def _skeleton(test: str):
    return parse_params_header(*_header_map(test))


def _leading_comments(text: str) -> list[str]:
    """The solver log block: the lines before the first flag line (``!`` lines and the odd empty line)."""
    out = []
    for line in text.splitlines():
        if line.startswith("!") or not line.strip():
            out.append(line)
        else:
            break
    return out


def _x_of(p) -> np.ndarray:
    """The coefficient vector of a solved model, in chimes_lsq column order (inverse of fill_coefficients)."""
    excl2, excl1 = set(excluded_pairs(p)), set(excluded_types(p))
    xs = [c for i, c in enumerate(p.pair_coeffs) if i not in excl2]
    for b in p.triplets + p.quadruplets:
        if not b.excluded:
            u = np.zeros(b.unique)
            u[b.param] = b.values
            xs.append(u)
    if p.flags.get("FITCOUL") == "true":
        xs.append(np.array([float(q.split()[-1]) for q in p.pair_charges]))
    if p.energy_offsets is not None:
        xs.append(np.array([e for i, e in enumerate(p.energy_offsets) if i not in excl1]))
    return np.concatenate(xs)


@functools.cache
def _alc3_text() -> str:
    return _text(LSQ_DIR / "al_driver_hierarch_fit" / "ALC-3.params.txt.gz")


# ===================================================================== params.header / ff_groups.map
@pytest.mark.parametrize("test", ALL_TESTS)
def test_header_and_map_byte_identical(test):
    header, mapping = _header_map(test)
    skel = parse_params_header(header, mapping)
    assert format_params_header(skel) == header
    assert format_ff_groups_map(skel) == mapping


@pytest.mark.parametrize("test", ALL_TESTS)
def test_skeleton_content(test):
    skel = _skeleton(test)
    assert all(not c.any() for c in skel.pair_coeffs)
    assert all(not b.values.any() for b in skel.triplets + skel.quadruplets)
    assert skel.energy_offsets is None
    assert list(skel.flags) == ["USECOUL", "FITCOUL", "USE3BCH", "USE4BCH", "EXCLD1B", "EXCLD2B"]
    if test in FITCOUL_TESTS:
        assert skel.pair_charges == [f"q_{q.atom1} x q_{q.atom2} 0.0000000000000e+00" for q in skel.pairs]
    else:
        assert skel.pair_charges == [None] * len(skel.pairs)
    # the header's "N parameters" is UNIQUE and its param indices cover 0..N-1
    for b in skel.triplets + skel.quadruplets:
        assert not b.excluded and sorted(set(b.param.tolist())) == list(range(b.unique))


def test_lsq2_header_is_h2o_4bcheby_header():
    assert _text(_path("lsq2", "params.header")) == _text(_path("h2o-4bcheby", "params.header"))


def test_read_params_header_files():
    skel = read_params_header(_path("special4b", "params.header"), _path("special4b", "ff_groups.map"))
    assert skel.orders == (14, 3, 2)
    assert [b.unique for b in skel.triplets] == [7, 13, 13, 7]
    assert skel.special[("4B", "S_MAXIM")].entries[1] == (
        "OOOOOHOOOHOH", ("OH", "OH", "OH", "OO", "OO", "OO"), (2.0, 2.0, 2.0, 4.0, 4.0, 4.0))
    assert skel.source.endswith("params.header.gz")


# ===================================================================== solution vector -> model
@pytest.mark.parametrize("test", SOLVED_TESTS)
def test_fill_gives_reference_params(test):
    skel = _skeleton(test)
    x = read_test_suite_params(_path(test, "test_suite_params.txt"))
    ref = parse_params(_text(_path(test, "params.txt")))
    filled = fill_coefficients(skel, x)
    # test_suite_params.txt and params.txt print x with the same %21.13e: the models are identical,
    # charges (FITCOUL tests) and energy offsets included
    assert filled.same_model(ref)
    fit_energy = ref.energy_offsets is not None
    assert fit_energy == (test in ("stress-and-ener-2b1", "two-traj-files"))
    assert n_columns(skel, fit_energy) == len(x)
    assert len(column_labels(skel, fit_energy)) == len(x)
    assert (ref.pair_charges[0] is not None) == (test in FITCOUL_TESTS)
    # the inverse mapping gives x back
    np.testing.assert_array_equal(_x_of(filled), x)


def test_dim_txt_matches_columns():
    skel = _skeleton("nonorth2")
    ncols, nrows = read_dim_txt(_path("nonorth2", "dim.txt"))
    assert (ncols, nrows) == (12, 8640)
    assert n_columns(skel, fit_energy=False) == ncols == len(read_test_suite_params(_path("nonorth2",
                                                                                          "test_suite_params.txt")))


@pytest.mark.parametrize("test", SOLVED_TESTS)
def test_solved_params_byte_identical(test):
    text = _text(_path(test, "params.txt"))
    skel = _skeleton(test)
    filled = fill_coefficients(skel, read_test_suite_params(_path(test, "test_suite_params.txt")))
    out = format_solved_params(filled, _leading_comments(text))
    assert out == text
    assert parse_params(out).same_model(filled)


@pytest.mark.parametrize("variant", LSQ2_VARIANTS)
def test_lsq2_solver_variants(variant):
    """Every solver variant of lsq2: its x maps onto the h2o-4bcheby skeleton and the text is reproduced."""
    text = _text(_path("lsq2", f"params.{variant}.txt"))
    ref = parse_params(text)
    skel = _skeleton("lsq2")
    x = _x_of(ref)
    assert len(x) == n_columns(skel, fit_energy=False) == 419
    filled = fill_coefficients(skel, x, fit_energy=False)
    assert filled.same_model(ref)
    assert format_solved_params(filled, _leading_comments(text)) == text


LSQ2_COMMENTS = {
    "dlars.1.0e-04": dict(nvars=419, algorithm="dlars", parameter=1e-4, rmse=5.9555, max_abs=2819.7, nonzero=197,
                          bic=35728.0, dlars_command="srun -N 1 -n 36 ../../contrib/dlars/src/dlars A.txt b.txt "
                          "dim.txt --lambda=0.0001 --split_files --algorithm=lars --normalize=n >& dlars.log"),
    "dlasso.read": dict(nvars=None, algorithm="dlasso", parameter=1e-4, rmse=6.6859, max_abs=169440.0, nonzero=161,
                        bic=37598.0, read_output=True),
    "lassolars.1.0e-04": dict(nvars=419, algorithm="lassolars", parameter=1e-4, rmse=5.884, max_abs=1432.8,
                              nonzero=197, bic=35498.0),
    "ridge.1.0e-03": dict(nvars=419, algorithm="ridge", parameter=1e-3, rmse=5.7167, max_abs=1142.8, nonzero=419,
                          bic=36983.0),
    "ridgecv": dict(nvars=419, algorithm="ridgecv", parameter=1e-6, rmse=5.2998, max_abs=30108.0, nonzero=419,
                    bic=35544.0),
    "svd.1.0e-05": dict(nvars=419, algorithm="svd", parameter=1e-5, eps_abs=0.64807, rmse=7.5419, max_abs=123.39,
                        nonzero=124, bic=39549.0),
    "svd.weight": dict(nvars=419, algorithm="svd", parameter=1e-5, eps_abs=62.243, rmse=7.919, max_abs=84.061,
                       nonzero=104, bic=40294.0, weights_file="weights.txt"),
}


@pytest.mark.parametrize("variant", LSQ2_VARIANTS)
def test_solver_comment_lines_lsq2(variant):
    text = _text(_path("lsq2", f"params.{variant}.txt"))
    lines = solver_comment_lines(nequations=9506, date="2025-04-13", rmse_label="RMS force error",
                                 **LSQ2_COMMENTS[variant])
    assert lines == _leading_comments(text)


def test_solver_comment_lines_current_label():
    text = _text(_path("nonorth2", "params.txt"))
    lines = solver_comment_lines(12, 8640, "svd", 1e-5, 4.0724e-3, 358.68, 12, -94992.0, date="2025-04-13",
                                 eps_abs=1.7054e-3)
    assert lines == _leading_comments(text)
    with pytest.raises(ValueError, match="eps_abs"):
        solver_comment_lines(12, 8640, "svd", 1e-5, 1.0, 1.0, 12, 1.0)
    with pytest.raises(ValueError, match="unknown solver"):
        solver_comment_lines(12, 8640, "magic", 1e-5, 1.0, 1.0, 12, 1.0)
    assert solver_comment_lines(1, 2, "lasso", 1e-4, 1.0, 1.0, 1, 1.0)[0].startswith("! Date  20")


def test_solved_params_exact_digits():
    skel = _skeleton("h2o-3bcheby")
    rng = np.random.default_rng(7)
    x = rng.normal(scale=50.0, size=n_columns(skel, True))
    filled = fill_coefficients(skel, x)
    assert filled.energy_offsets is not None
    # %21.13e (the chimes_lsq.py format): 14 significant digits
    back = parse_params(format_solved_params(filled, []))
    np.testing.assert_allclose(_x_of(back), x, rtol=1e-13, atol=0)
    # digits=16 reads back to the same doubles, except the FITCOUL charge text (kept at 13 digits in the model)
    back16 = parse_params(format_solved_params(filled, [], digits=16))
    no_q = [None] * len(filled.pairs)
    assert dataclasses.replace(back16, pair_charges=no_q).same_model(dataclasses.replace(filled, pair_charges=no_q))
    np.testing.assert_allclose(_x_of(back16), x, rtol=1e-13, atol=0)


def test_column_labels():
    labels = column_labels(_skeleton("h2o-3bcheby"), fit_energy=False)
    assert labels[:2] == ["2B OO n=0", "2B OO n=1"]
    assert labels[30:35] == ["3B[0] OOO param 0", "3B[0] OOO param 1", "3B[1] HOO param 0", "3B[1] HOO param 1",
                             "3B[1] HOO param 2"]
    assert labels[-3:] == ["Q OO", "Q HH", "Q OH"]
    labels = column_labels(_skeleton("stress-and-ener-2b1"), fit_energy=True)
    assert labels[-3:] == ["E0 C", "E0 H", "E0 O"] and labels[71] == "2B HO n=11"
    labels = column_labels(_skeleton("special4b"), fit_energy=False)
    assert "4B[2] HHOO param 0" in labels


def test_fill_rejects_wrong_length():
    skel = _skeleton("nonorth2")
    with pytest.raises(ValueError, match="needs 12 entries"):
        fill_coefficients(skel, np.zeros(11))
    with pytest.raises(ValueError, match="fit_energy=True"):
        fill_coefficients(skel, np.zeros(12), fit_energy=True)
    filled = fill_coefficients(skel, np.arange(13.0))
    assert filled.energy_offsets.tolist() == [12.0]
    assert skel.energy_offsets is None and not skel.pair_coeffs[0].any()  # the skeleton is untouched


# ===================================================================== hierarchical fit: EXCLUDED, EXCLD lists
def test_alc3_excluded_blocks_round_trip():
    text = _alc3_text()
    ref = parse_params(text)
    assert [b.excluded for b in ref.triplets] == [True, False, False, True]
    assert [b.excluded for b in ref.quadruplets] == [True, False, False, False, True]
    header, mapping = format_params_header(ref), format_ff_groups_map(ref)
    assert " PAIRS: CC CC CC EXCLUDED:\n\n INDEX: 1 ATOMS: C C N\n" in header
    assert " INDEX: 4 ATOMS: N N N N \n PAIRS: NN NN NN NN NN NN EXCLUDED:\n\n\n" in header
    lines = text.splitlines()
    start = lines.index("PAIRMAPS: 4")
    assert mapping == "\n".join(lines[start:lines.index("NO ENERGY OFFSETS:  2") - 1]) + "\n"
    skel = parse_params_header(header, mapping)
    assert format_params_header(skel) == header
    assert skel.same_model(dataclasses.replace(
        ref, pair_coeffs=[np.zeros(25)] * 3, energy_offsets=None,
        triplets=[dataclasses.replace(b, values=np.zeros(b.total)) for b in ref.triplets],
        quadruplets=[dataclasses.replace(b, values=np.zeros(b.total)) for b in ref.quadruplets]))
    x = _x_of(ref)
    assert len(x) == 3799 == n_columns(skel, fit_energy=True)  # "Number of variables = 3799"
    filled = fill_coefficients(skel, x)
    assert filled.same_model(ref)
    # the al_driver file is reproduced byte for byte (its log block passed through)
    assert format_solved_params(filled, _leading_comments(text)) == text


def test_excld_lists():
    ref = parse_params(_alc3_text())
    skel = parse_params_header(format_params_header(ref), format_ff_groups_map(ref))
    flags = {**skel.flags, "EXCLD1B": "0", "EXCLD2B": "0 1"}
    skel = dataclasses.replace(skel, flags=flags)
    header = format_params_header(skel)
    assert "USE4BCH: true\nEXCLD1B: 0 \nEXCLD2B: 0 1 \n\nPAIRTYP:" in header  # C++ writes "<i> " per index
    skel = parse_params_header(header, format_ff_groups_map(skel))
    assert skel.flags["EXCLD1B"] == "0" and skel.flags["EXCLD2B"] == "0 1"
    assert (excluded_types(skel), excluded_pairs(skel)) == ([0], [0, 1])
    n = n_columns(skel, fit_energy=True)
    assert n == 3799 - 2 * 25 - 1
    labels = column_labels(skel, fit_energy=True)
    assert labels[0] == "2B CN n=0" and labels[25] == "3B[1] CCN param 0" and labels[-1] == "E0 N"
    x = np.arange(1.0, n + 1)
    filled = fill_coefficients(skel, x)
    assert not filled.pair_coeffs[0].any() and not filled.pair_coeffs[1].any()
    np.testing.assert_array_equal(filled.pair_coeffs[2], x[:25])
    assert filled.energy_offsets.tolist() == [0.0, x[-1]]
    np.testing.assert_array_equal(filled.triplets[1].values, x[25 + filled.triplets[1].param])
    assert not filled.triplets[0].values.size and filled.triplets[0].excluded
    text = format_solved_params(filled, ["! test"])
    assert "PAIRTYPE PARAMS: 0 C C\n\n  0   0.0000000000000e+00\n" in text
    assert "ENERGY OFFSET 1   0.0000000000000e+00\n" in text
    back = parse_params(text)
    assert back.same_model(filled)
    np.testing.assert_array_equal(_x_of(back), x)
    # without energies: no offsets, one column fewer
    assert fill_coefficients(skel, x[:-1]).energy_offsets is None


def test_excld_bad_index():
    header, mapping = _header_map("nonorth2")
    bad = header.replace("EXCLD2B: false", "EXCLD2B: 3 ")
    with pytest.raises(ParamsFormatError, match="EXCLD2B lists pair 3"):
        parse_params_header(bad, mapping)


# ===================================================================== header writer options
def test_special_all_is_expanded_like_chimes_lsq():
    skel = _skeleton("special3b")
    ref_header = format_params_header(skel)
    skel_all = dataclasses.replace(skel, special={("3B", "S_MAXIM"): SpecialCutoffs("ALL", 4.0)})
    header = format_params_header(skel_all)
    assert "SPECIAL 3B S_MAXIM: SPECIFIC 4\nCCCCCC CC CC CC 4.00000 4.00000 4.00000 \n" \
           "CCCOCO CC CO CO 4.00000 4.00000 4.00000 \nCOCOOO CO CO OO 4.00000 4.00000 4.00000 \n" \
           "OOOOOO OO OO OO 4.00000 4.00000 4.00000 \n\nATOM PAIR TRIPLETS: 4\n" in header
    # the keys are those chimes_lsq itself chose for its SPECIFIC list
    assert [e[0] for e in skel.special[("3B", "S_MAXIM")].entries] == ["CCCCCC", "CCCOCO", "COCOOO", "OOOOOO"]
    assert len(header) == len(ref_header)


def test_penalty_lines_kept():
    skel = dataclasses.replace(_skeleton("nonorth2"), penalty_dist=0.02, penalty_scaling=1.0e4)
    header = format_params_header(skel)
    assert "FCUT TYPE: CUBIC\n\nPAIR CHEBYSHEV PENALTY DIST: 0.02\nPAIR CHEBYSHEV PENALTY SCALING: 10000.0\n" \
           "\nATOM PAIR TRIPLETS: 0\n" in header
    back = parse_params_header(header, format_ff_groups_map(skel))
    assert back.same_model(skel)
    solved = parse_params(format_solved_params(fill_coefficients(skel, np.ones(12)), []))
    assert solved.penalty == (0.02, 1.0e4)


def test_map_written_in_std_map_order():
    skel = _skeleton("h2o-3bcheby")
    shuffled = dataclasses.replace(skel, pairmaps=skel.pairmaps[::-1], tripmaps=skel.tripmaps[::-1])
    assert format_ff_groups_map(shuffled) == _text(_path("h2o-3bcheby", "ff_groups.map"))


# ===================================================================== malformed input
def _broken(test: str, old: str, new: str, count: int = 1) -> str:
    header, _ = _header_map(test)
    assert old in header
    return header.replace(old, new, count)


@pytest.mark.parametrize("old, new, lineno, message", [
    ("PAIRTYP: CHEBYSHEV  10 2 0", "PAIRTYP: CHEBYSHEV  10 x 0", 8, "expected an integer for a polynomial order"),
    ("0\t\tO\t\t-\t\t15.9994", "0\t\tO\t\t-", 13, "expected 'index symbol charge mass'"),
    (" PAIRS: OH OH OO  3 parameters, 4 total parameters ", " PAIRS: OH OH OO  3 params", 37,
     "parameters, <n> total parameters"),
    ("      3       1  1  1         3               2       ", "      3       1  1  5         3               2", 43,
     "power 5 outside 0..1"),
    ("      2       1  1  0         2               1       ", "      2       1  1  0         2               3", 42,
     "parameter index 3 outside 0..2"),
    (" INDEX: 1 ATOMS: H O O", " INDEX: 2 ATOMS: H O O", 36, "block index 2 out of order"),
    ("FCUT TYPE: CUBIC", "FCUT TYPE: COSINE", 23, "FCUT TYPE: CUBIC"),
    ("USE4BCH: false", "use4bch: false", 4, "unrecognised line"),
])
def test_malformed_header(old, new, lineno, message):
    _, mapping = _header_map("h2o-3bcheby")
    with pytest.raises(ParamsFormatError, match=message) as info:
        parse_params_header(_broken("h2o-3bcheby", old, new), mapping, filename="h.hdr")
    assert info.value.filename == "h.hdr" and info.value.lineno == lineno


def test_truncated_header_and_bad_map():
    header, mapping = _header_map("h2o-3bcheby")
    cut = "\n".join(header.splitlines()[:41]) + "\n"  # block 1 stops after 2 of its 4 rows
    with pytest.raises(ParamsFormatError, match="unexpected end of file: expected row 2 of 4") as info:
        parse_params_header(cut, mapping)
    assert info.value.lineno == 42
    with pytest.raises(ParamsFormatError, match="TRIPMAPS entry 8 of 8") as info:
        parse_params_header(header, mapping.replace("0 OOOOOO\n", ""), map_filename="m.map")
    assert info.value.filename == "m.map"
    with pytest.raises(ParamsFormatError, match="do not describe a consistent model.*TRIPMAPS index 7"):
        parse_params_header(header, mapping.replace("0 OOOOOO", "7 OOOOOO"))
    with pytest.raises(ParamsFormatError, match="no 'PAIRTYP"):
        parse_params_header("USECOUL: false\n", mapping)
    with pytest.raises(ParamsFormatError, match="no 'PAIRMAPS:' section"):
        parse_params_header(header, "")


# ===================================================================== small numeric files
def _roundtrip(tmp_path, name: str, writer, reader, *, gz_ok: bool = True):
    ref = _text(_path("nonorth2", name))
    values = reader(_path("nonorth2", name))
    out = tmp_path / name
    writer(out, values)
    assert out.read_text() == ref
    if gz_ok:
        writer(tmp_path / (name + ".gz"), values)
        np.testing.assert_array_equal(reader(tmp_path / (name + ".gz")), values)
    return values


def test_b_force_natoms_round_trip(tmp_path):
    b = _roundtrip(tmp_path, "b.txt", write_b_txt, read_b_txt)
    assert b.shape == (8640,) and b[0] == 2.2589894138920460e01
    y = _roundtrip(tmp_path, "force.txt", write_force_txt, read_force_txt)
    assert y.shape == (8640,) and y[0] == 22.58667
    natoms = _roundtrip(tmp_path, "natoms.txt", write_natoms_txt, read_natoms_txt)
    assert natoms.dtype == np.int64 and set(natoms.tolist()) == {288}
    x = _roundtrip(tmp_path, "test_suite_params.txt", write_test_suite_params, read_test_suite_params)
    assert x.shape == (12,)


def test_b_labeled_and_dim_round_trip(tmp_path):
    labels, values = read_b_labeled(_path("nonorth2", "b-labeled.txt"))
    assert len(labels) == 8640 and set(labels) == {"C"} and values[1] == -7.99243
    write_b_labeled(tmp_path / "b-labeled.txt", labels, values)
    assert (tmp_path / "b-labeled.txt").read_text() == _text(_path("nonorth2", "b-labeled.txt"))
    # values are the %g rounding of b.txt
    np.testing.assert_allclose(values, read_b_txt(_path("nonorth2", "b.txt")), rtol=5e-6)
    with pytest.raises(ValueError, match="labels"):
        write_b_labeled(tmp_path / "x", labels[:3], values)
    write_dim_txt(tmp_path / "dim.txt", *read_dim_txt(_path("nonorth2", "dim.txt")))
    assert (tmp_path / "dim.txt").read_text() == _text(_path("nonorth2", "dim.txt"))
    (tmp_path / "dim.0000.txt").write_text("419 0 9505 9506\n")
    assert read_dim_txt(tmp_path / "dim.0000.txt") == (419, 9506)


def test_A_round_trips(tmp_path):
    """First 200 rows of nonorth2 A.txt.aa (forces only: 3-space separators)."""
    src = _path("nonorth2", "A.txt.aa.head200")
    A = read_A(src)
    assert A.shape == (200, 12) and A[0, 0] == 4.9079957876020666e-02
    write_A(tmp_path / "A.txt", A, text=True)
    assert (tmp_path / "A.txt").read_text() == _text(src)
    write_A(tmp_path / "A.txt.gz", A, text=True)
    np.testing.assert_array_equal(read_A(tmp_path / "A.txt.gz"), A)
    write_A(tmp_path / "A.npy", A)
    write_A(tmp_path / "A.bin", A)  # binary content whatever the name
    for name in ("A.npy", "A.bin"):
        np.testing.assert_array_equal(read_A(tmp_path / name), A)
    assert not (tmp_path / "A.bin.npy").exists()


def test_A_text_row_kinds(tmp_path):
    A = np.array([[1.0, -2.0, 0.0], [0.5, 0.25, 0.0], [3.0, 4.0, 7.0]])
    write_A(tmp_path / "A.txt", A, text=True, row_kinds="FSE", energy_cols=1)
    assert (tmp_path / "A.txt").read_text() == (
        "1.0000000000000000e+00   -2.0000000000000000e+00    0.0\n"
        "5.0000000000000000e-01 2.5000000000000000e-01  0.0\n"
        "3.0000000000000000e+00 4.0000000000000000e+00  7\n")
    np.testing.assert_array_equal(read_A(tmp_path / "A.txt"), A)
    with pytest.raises(ValueError, match="row kinds"):
        write_A(tmp_path / "B.txt", A, text=True, row_kinds="FS")


def test_with_header_flags():
    ref = parse_params(_alc3_text())
    assert list(ref.flags) == ["USECOUL", "FITCOUL", "USE3BCH", "USE4BCH"]
    std = with_header_flags(dataclasses.replace(ref, flags={**ref.flags, "USEPOVR": "false"}))
    assert std.flags == {"USECOUL": "false", "FITCOUL": "false", "USE3BCH": "true", "USE4BCH": "true",
                         "EXCLD1B": "false", "EXCLD2B": "false"}
    lines = format_params_header(std).splitlines()
    # chimes_lsq.py reads FITCOUL from line 1, PAIRTYP from line 7 and ATOM TYPES from line 9
    assert lines[1] == "FITCOUL: false" and lines[7].startswith("PAIRTYP:") and lines[9] == "ATOM TYPES: 2"
    skel = _skeleton("h2o-3bcheby")
    assert with_header_flags(skel).flags == skel.flags
    assert with_header_flags(dataclasses.replace(skel, flags={})).flags == {
        "USECOUL": "false", "FITCOUL": "false", "USE3BCH": "true", "USE4BCH": "false", "EXCLD1B": "false",
        "EXCLD2B": "false"}


def test_exact_numbers_option():
    skel = _skeleton("special3b")
    pairs = [dataclasses.replace(q, s_minim=q.s_minim + 1.234567e-4) for q in skel.pairs]
    spec = skel.special[("3B", "S_MAXIM")]
    entries = [(k, n, (v[0] + 1e-7, *v[1:])) for k, n, v in spec.entries]
    odd = dataclasses.replace(skel, pairs=pairs,
                              special={("3B", "S_MAXIM"): SpecialCutoffs("SPECIFIC", entries=entries)})
    mapping = format_ff_groups_map(odd)
    rounded = parse_params_header(format_params_header(odd), mapping)  # chimes_lsq behaviour: %g / %.5f
    assert rounded.pairs[0].s_minim == 0.988123 and rounded.special[("3B", "S_MAXIM")].entries[0][2][0] == 4.4
    exact = parse_params_header(format_params_header(odd, exact_numbers=True), mapping)
    assert exact.same_model(odd)
    # short numbers are written the same way in both modes
    assert format_params_header(skel, exact_numbers=True) == format_params_header(skel)
    solved = parse_params(format_solved_params(fill_coefficients(odd, np.zeros(228)), [], exact_numbers=True))
    assert solved.pairs == odd.pairs
