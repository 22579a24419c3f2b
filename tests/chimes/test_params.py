"""Reading and writing ChIMES parameter files (:mod:`aiida_chimes.chimes.params`).

The official parameter files of ``chimes_calculator`` (and the hierarchical tiles of ``al_driver``) must
round-trip exactly, and every deliberately broken variant of a good file must raise
:class:`ParamsFormatError` naming the file, the offending line and what was expected.
"""

from __future__ import annotations

import functools
import gzip
import re

import numpy as np
import pytest

from aiida_chimes.chimes.params import (
    DEFAULT_PENALTY_DIST,
    DEFAULT_PENALTY_SCALING,
    ParamsFormatError,
    parse_params,
    read_params,
)
from tests.helpers import (
    FORCE_FIELDS,
    HIERARCH_PARAMS,
    force_field_path,
    hierarch_params_path,
    read_text,
)

LIQC = "published_params.liqC.2+3b.cubic.txt"
LIQC_2B = "published_params.liqC.2b.cubic.txt"
AMBH2O = "published_params.ambH2O.2+3b.cubic.txt"
LIQCO = "published_params.liqCO.2+3b.cubic.txt"
HN3 = "published_params.HN3.2+3+4b.Tersoff.special.offsets.txt"
H2O_2B = "test_params.h2o_2bcheby.txt"
TIO2 = "validated_params.TiO2.2+3b.Tersoff.txt"

ALL_FILES = [force_field_path(n) for n in FORCE_FIELDS] + [hierarch_params_path(n) for n in HIERARCH_PARAMS]


@functools.cache
def _read(name: str):
    return read_params(force_field_path(name))


@functools.cache
def _text(name: str) -> str:
    return read_text(force_field_path(name))


# ===================================================================== round trips
def test_data_is_complete():
    assert len(FORCE_FIELDS) == 21
    assert len(ALL_FILES) == 23
    assert all(p.is_file() for p in ALL_FILES)


@pytest.mark.parametrize("path", ALL_FILES, ids=[p.name.removesuffix(".gz") for p in ALL_FILES])
def test_round_trip_string(path):
    params = read_params(path)
    text = params.to_string()
    again = parse_params(text, "roundtrip.txt")
    assert params.same_model(again)
    assert again.same_model(params)
    # writing is a fixed point (apart from the leading '!' comment block): the written text reads back
    # and writes the same text again
    assert _without_comments(again.to_string()) == _without_comments(text)


def _without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("!"))


@pytest.mark.parametrize("path", ALL_FILES, ids=[p.name.removesuffix(".gz") for p in ALL_FILES])
def test_round_trip_file(path, tmp_path):
    params = read_params(path)
    plain = tmp_path / "params.txt"
    params.write(plain)
    again = read_params(plain)
    assert again.same_model(params)
    assert again.source == str(plain)
    # and through a gzip-compressed file
    packed = tmp_path / "params.txt.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write(params.to_string())
    assert read_params(packed).same_model(params)


def test_read_plain_and_gzip_agree(tmp_path):
    plain = tmp_path / LIQC
    plain.write_text(_text(LIQC))
    assert read_params(plain).same_model(_read(LIQC))


def test_same_model_detects_a_change():
    params = _read(LIQC)
    changed = parse_params(params.to_string(), "changed.txt")
    changed.triplets[0].values[5] += 1e-12
    assert not params.same_model(changed)
    changed = parse_params(params.to_string(), "changed.txt")
    changed.pairs[0].s_maxim = 3.2
    assert not params.same_model(changed)


def test_comments_and_file_name_do_not_matter():
    params = _read(LIQC)
    text = params.to_string()
    assert params.comments and params.comments[0] == "! https://doi.org/10.1021/acs.jctc.7b00867"
    stripped = "\n".join(line for line in text.splitlines() if not line.startswith("!"))
    assert parse_params(stripped, "other-name.txt").same_model(params)


# ===================================================================== concrete facts
def test_facts_liqc_2_3b():
    p = _read(LIQC)
    assert p.orders == (12, 5, 0)
    assert p.cheby_range == (-1.0, 1.0)
    assert p.symbols == ["C"]
    assert p.types[0].mass == 12.011
    assert len(p.pairs) == 1
    cc = p.pairs[0]
    assert (cc.atom1, cc.atom2, cc.name) == ("C", "C", "CC")
    assert (cc.s_minim, cc.s_maxim, cc.morse_lambda, cc.s_delta) == (1.0, 3.15, 1.25, 0.01)
    assert cc.chbdist == "MORSE"
    assert p.max_cutoff == 3.15
    assert p.fcut_type == "CUBIC"
    assert (p.penalty_dist, p.penalty_scaling) == (0.10, 1e4)
    assert p.penalty == (0.10, 1e4)
    assert p.flags["USE3BCH"] == "true" and p.flags["USE4BCH"] == "false"
    assert p.special == {}
    # 2-body block: powers 0..11 with the listed coefficients
    np.testing.assert_array_equal(p.pair_powers[0], np.arange(12))
    assert p.pair_coeffs[0][0] == -193.32613499494448
    assert p.pair_coeffs[0][11] == 0.7312500781107083
    # one triplet block with TOTAL 112
    assert p.n_triplets == 1 and p.n_quadruplets is None
    assert len(p.triplets) == 1 and p.quadruplets == []
    block = p.triplets[0]
    assert block.index == 0 and block.atoms == ("C", "C", "C") and block.pairs == ("CC", "CC", "CC")
    assert not block.excluded
    assert block.unique == 30
    assert block.total == 112
    assert block.powers.shape == (112, 3)
    assert block.powers.max() == 4  # order 5 = max power + 1
    np.testing.assert_array_equal(block.powers[0], [0, 1, 1])
    np.testing.assert_array_equal(block.powers[111], [4, 4, 4])
    assert (block.equiv[111], block.param[111], block.values[111]) == (111, 29, -2146.872001834904)
    assert block.values[0] == 8138.7153729519996
    assert p.pairmaps == [(0, "CC")]
    assert p.tripmaps == [(0, "CCCCCC")]
    assert p.energy_offsets is None


def test_facts_liqc_2b():
    p = _read(LIQC_2B)
    assert p.orders == (12, 0, 0)
    assert p.n_triplets == 0 and p.triplets == [] and p.tripmaps == []


def test_facts_hn3():
    p = _read(HN3)
    assert p.orders == (12, 8, 4)
    assert p.symbols == ["N", "H"]
    assert [t.mass for t in p.types] == [14.0064, 1.0079]
    assert [q.name for q in p.pairs] == ["NN", "HH", "NH"]
    assert [q.s_minim for q in p.pairs] == [0.793, 0.451, 0.666]
    assert [q.morse_lambda for q in p.pairs] == [1.15, 0.8, 1.0]
    assert p.fcut_type == "TERSOFF" and p.fcut_var == 0.5
    assert p.penalty == (0.02, 1e6)
    assert set(p.special) == {("3B", "S_MAXIM"), ("4B", "S_MAXIM")}
    s3 = p.special[("3B", "S_MAXIM")]
    s4 = p.special[("4B", "S_MAXIM")]
    assert (s3.mode, s3.value) == ("ALL", 5.0)
    assert (s4.mode, s4.value) == ("ALL", 4.0)
    assert p.energy_offsets is not None
    np.testing.assert_array_equal(p.energy_offsets, [-126.828700616, -59.0402284083])
    assert p.n_triplets == 4 and len(p.triplets) == 4
    assert p.n_quadruplets == 5 and len(p.quadruplets) == 5
    assert all(b.powers.shape[1] == 6 for b in p.quadruplets)
    assert len(p.pairmaps) == 4 and len(p.tripmaps) == 8 and len(p.quadmaps) == 16
    assert p.quadmaps[-1] == (0, "NNNNNNNNNNNN")


def test_facts_ambh2o_specific_cutoffs():
    p = _read(AMBH2O)
    assert p.symbols == ["O", "H"]
    spec = p.special[("3B", "S_MAXIM")]
    assert spec.mode == "SPECIFIC"
    assert spec.entries == [
        ("OOOOOO", ("OO", "OO", "OO"), (8.0, 8.0, 8.0)),
        ("OHOHOO", ("OO", "OH", "OH"), (8.0, 6.0, 6.0)),
        ("HHOHOH", ("OH", "OH", "HH"), (6.0, 6.0, 5.0)),
        ("HHHHHH", ("HH", "HH", "HH"), (5.0, 5.0, 5.0)),
    ]
    assert [b.atoms for b in p.triplets] == [
        ("O", "O", "O"), ("O", "O", "H"), ("O", "H", "H"), ("H", "H", "H"),
    ]
    assert p.tripmaps[0] == (3, "HHHHHH")


@pytest.mark.parametrize("name", [H2O_2B, TIO2])
def test_default_penalty_without_penalty_lines(name):
    assert "PENALTY" not in _text(name)
    p = _read(name)
    assert p.penalty_dist is None and p.penalty_scaling is None
    assert p.penalty == (0.01, 1e4) == (DEFAULT_PENALTY_DIST, DEFAULT_PENALTY_SCALING)
    # and the writer does not invent penalty lines
    assert "PENALTY" not in p.to_string()


def test_facts_h2o_2b_seven_field_pair_lines():
    p = _read(H2O_2B)
    assert p.orders == (8, 0, 0)
    assert [t.charge for t in p.types] == ["0.0", "0.0"]
    assert all(q.s_delta is None for q in p.pairs)
    assert [(q.s_minim, q.s_maxim, q.morse_lambda) for q in p.pairs] == [(0.6, 6.0, 1.25)] * 3


def test_facts_hierarch_c_tile():
    p = read_params(hierarch_params_path("C.params.txt.reduced"))
    assert p.orders == (20, 10, 4)
    assert p.symbols == ["C"] and p.types[0].mass == 12.0107
    assert p.fcut_type == "TERSOFF" and p.fcut_var == 0.75
    assert p.penalty == (0.02, 1e6)
    assert p.special[("3B", "S_MAXIM")].entries == [("CCCCCC", ("CC",) * 3, (5.0,) * 3)]
    assert p.special[("4B", "S_MAXIM")].entries == [("CCCCCCCCCCCC", ("CC",) * 6, (4.5,) * 6)]
    assert len(p.triplets) == 1 and len(p.quadruplets) == 1


# ===================================================================== broken files
def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based number of the line holding the ``occurrence``-th match of ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not found {occurrence} times"
    return hits[occurrence - 1]


def _line_matching(text: str, pattern: str) -> int:
    """1-based number of the first line matching the regular expression ``pattern``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"no line matches {pattern!r}")


def _replace(old: str, new: str):
    def mutate(text: str) -> str:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
        return text.replace(old, new)

    return mutate


def _delete_triplet_rows(first: int, last: int):
    """Remove coefficient rows ``first..last`` of the (only) triplet block."""

    def mutate(text: str) -> str:
        lines = text.splitlines(keepends=True)
        start = _line_matching(text, rf"^\s+{first}\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s*$") - 1
        stop = _line_matching(text, rf"^\s+{last}\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s*$")
        return "".join(lines[:start] + lines[stop:])

    return mutate


#: No single offending line (a line is missing): the line number is not checked.
ANY_LINE = None


def _at(needle: str, occurrence: int = 1):
    return lambda text: {_line_of(text, needle, occurrence)}


def _at_regex(pattern: str):
    return lambda text: {_line_matching(text, pattern)}


LIQC_LAST_ROW = "      111     4   4   4         111             29       -2146.872001834904"
LIQC_PAIR_LINE = "1.0         3.15               0.01            MORSE           1.25"

BROKEN = [
    # ---------------------------------------------------------------- missing lines
    pytest.param(LIQC, _replace("PAIRTYP: CHEBYSHEV  12 5 0 -1 1\n", ""), ANY_LINE, "PAIRTYP",
                 id="missing-PAIRTYP"),
    pytest.param(LIQC, _replace("ENDFILE", ""), ANY_LINE, "ENDFILE", id="missing-ENDFILE"),
    pytest.param(LIQC, _replace("TRIPMAPS: 1\n0 CCCCCC\n", ""), ANY_LINE, "TRIPMAPS", id="missing-TRIPMAPS"),
    # ---------------------------------------------------------------- counts
    # the number of pairs follows from 'ATOM TYPES: 1': the ATOM PAIRS line is the wrong one
    pytest.param(LIQC, _replace("ATOM PAIRS: 1", "ATOM PAIRS: 2"), _at("ATOM PAIRS: 2"), "ATOM PAIRS",
                 id="atom-pairs-count-too-large"),
    pytest.param(AMBH2O, _replace("ATOM PAIRS: 3", "ATOM PAIRS: 2"), _at("ATOM PAIRS: 2"), "ATOM PAIRS",
                 id="atom-pairs-count-too-small"),
    pytest.param(LIQC, _replace("ATOM PAIR TRIPLETS: 1", "ATOM PAIR TRIPLETS: 2"),
                 _at("ATOM PAIR TRIPLETS: 2"), "ATOM PAIR TRIPLETS", id="triplet-count"),
    pytest.param(HN3, _replace("NO ENERGY OFFSETS:  2", "NO ENERGY OFFSETS:  3"), _at("NO ENERGY OFFSETS"),
                 "expected 2 energy offsets", id="energy-offsets-count"),
    pytest.param(LIQC, _replace("ENDFILE", "NO ENERGY OFFSETS: 2\nENERGY OFFSET 1 -1.0\n"
                                            "ENERGY OFFSET 2 -2.0\nENDFILE"),
                 _at("NO ENERGY OFFSETS"), "expected 1 energy offsets", id="energy-offsets-count-one-type"),
    # the file ends (ENDFILE) where the second offset was expected
    pytest.param(HN3, _replace("ENERGY OFFSET 2 -59.0402284083\n", ""), _at("ENDFILE"), "ENERGY OFFSET 2",
                 id="energy-offset-line-missing"),
    # ---------------------------------------------------------------- coefficient tables
    pytest.param(LIQC, _replace("1 148.49886365821709", "1 148.4988636582x709"), _at("148.4988636582x709"),
                 "expected a number", id="pair-coefficient-not-a-number"),
    pytest.param(LIQC, _replace("-2146.872001834904", "-2146.87200l834904"), _at("-2146.87200l834904"),
                 "expected a number", id="triplet-coefficient-not-a-number"),
    pytest.param(LIQC, _replace("1 148.49886365821709", "1 nan"), _at_regex(r"^1 nan$"), "finite",
                 id="pair-coefficient-nan"),
    # rows 100..111 deleted: the table ends where row 101 of 112 was expected
    pytest.param(LIQC, _delete_triplet_rows(100, 111), _at("PAIRMAPS: 1"), "TOTAL: 112",
                 id="triplet-block-truncated"),
    pytest.param(LIQC, _replace(LIQC_LAST_ROW, LIQC_LAST_ROW + "\n      112     4   4   4         111"
                                                                "             29       1.0"),
                 _at("      112     4   4   4"), "more coefficient rows than TOTAL",
                 id="triplet-block-extra-row"),
    pytest.param(LIQC, _replace("UNIQUE: 30 TOTAL: 112", "UNIQUE: 30 TOTAL: 11x"), _at("TOTAL: 11x"),
                 "TOTAL", id="total-not-an-integer"),
    # an absurd TOTAL must be reported like any other wrong TOTAL (at the TOTAL line or where rows run out)
    pytest.param(LIQC, _replace("UNIQUE: 30 TOTAL: 112", "UNIQUE: 30 TOTAL: 1120000000000"),
                 lambda text: {_line_of(text, "TOTAL: 1120000000000"), _line_of(text, "PAIRMAPS: 1")},
                 "TOTAL", id="total-absurdly-large"),
    pytest.param(LIQC, _replace("      1       0   1   2  ", "      1       0   1   5  "),
                 _at("      1       0   1   5  "), "power 5", id="triplet-power-above-order"),
    pytest.param(LIQC, _replace("\n11 0.7312500781107083", "\n12 0.7312500781107083"),
                 _at("12 0.7312500781107083"), "2-body power 12", id="pair-power-above-order"),
    pytest.param(LIQC, _replace("\n11 0.7312500781107083", "\n99999999999999999999 0.7312500781107083"),
                 _at("99999999999999999999 0.73"), "2-body power", id="pair-power-beyond-int64"),
    pytest.param(LIQC, _replace("      1       0   1   2         1 ",
                                "      1       0   1   2   99999999999999999999 "),
                 _at("99999999999999999999"), "equivalence index", id="triplet-equiv-index-beyond-int64"),
    # ---------------------------------------------------------------- type and pair tables
    pytest.param(LIQC, _replace("ATOM PAIRS: 1", "ATOM TYPES: 1\n\nATOM PAIRS: 1"), _at("ATOM TYPES: 1", 2),
                 "duplicate 'ATOM TYPES'", id="duplicate-ATOM-TYPES"),
    pytest.param(AMBH2O, _replace("1\t\tH\t\t0\t\t1.0079", "1\t\tO\t\t0\t\t1.0079"), _at("1\t\tO\t\t0"),
                 "not unique", id="duplicate-atom-type-symbol"),
    pytest.param(AMBH2O, _replace("2               O               H  ",
                                  "2               O               N  "),
                 _at("2               O               N  "), "'N'", id="pair-line-unknown-element"),
    pytest.param(LIQC, _replace(LIQC_PAIR_LINE, "1.0 3.15 1.25"),
                 _at("C               C               1.0 3.15"), "7 or 8 fields", id="pair-line-6-fields"),
    pytest.param(LIQC, _replace("1.0         3.15 ", "4.0         3.15 "), _at("4.0         3.15"),
                 "S_MINIM <= S_MAXIM", id="pair-line-s-minim-above-s-maxim"),
    pytest.param(LIQC, _replace("FCUT TYPE: CUBIC", "FCUT TYPE: QUINTIC"), _at("FCUT TYPE: QUINTIC"),
                 "FCUT TYPE", id="fcut-type-unknown"),
    pytest.param(LIQC, _replace("FCUT TYPE: CUBIC", "FCUT TYPE: TERSOFF 1.5"), _at("FCUT TYPE: TERSOFF"),
                 "Tersoff cutoff fraction", id="fcut-tersoff-fraction-above-1"),
    # ---------------------------------------------------------------- blocks and maps
    pytest.param(LIQC, _replace("INDEX: 0 ATOMS: C C C", "INDEX: 0 ATOMS: C C X"), _at("ATOMS: C C X"),
                 "'X'", id="triplet-block-unknown-element"),
    pytest.param(LIQC, _replace("0 CCCCCC", "0 CCCCCX"), _at("0 CCCCCX"), "'CCCCCX'",
                 id="TRIPMAPS-key-unknown-element"),
    pytest.param(LIQC, _replace("\n0 CC\n", "\n1 CC\n"), _at_regex(r"^1 CC$"), "PAIRMAPS index 1",
                 id="PAIRMAPS-index-out-of-range"),
    # ---------------------------------------------------------------- SPECIAL ... SPECIFIC
    pytest.param(AMBH2O, _replace("OHOHOO OO OH OH", "OOOHOO OO OH OH"), _at("OOOHOO OO OH OH"), "'OOOHOO'",
                 id="SPECIFIC-key-not-in-TRIPMAPS"),
    pytest.param(LIQCO, _replace("CCCOCO CC CO CO", "CCCOCO CC CO CN"), _at("CCCOCO CC CO CN"), "'CN'",
                 id="SPECIFIC-unknown-pair"),
    pytest.param(LIQCO, _replace("CCCOCO CC CO CO 4.40000 4.00000 4.00000",
                                 "CCCOCO CC CO CO 4.40000 4.00000"),
                 _at("CCCOCO CC CO CO 4.40000 4.00000"), "expected 7 fields", id="SPECIFIC-entry-too-short"),
    pytest.param(LIQCO, _replace("SPECIAL 3B S_MAXIM: SPECIFIC 4", "SPECIAL 3B S_MAXIM: SOME 4"),
                 _at("SPECIAL 3B S_MAXIM: SOME 4"), "SPECIFIC", id="SPECIAL-mode-unknown"),
]


@pytest.mark.parametrize(("base", "mutate", "where", "fragment"), BROKEN)
def test_broken_file(base, mutate, where, fragment):
    good = _text(base)
    text = mutate(good)
    assert text != good
    filename = f"broken-{base}"
    with pytest.raises(ParamsFormatError) as info:
        parse_params(text, filename)
    err = info.value
    problems = []
    if err.filename != filename:
        problems.append(f"file name {err.filename!r}, expected {filename!r}")
    if fragment not in err.message:
        problems.append(f"message lacks {fragment!r}")
    if where is not ANY_LINE:
        expected = where(text)
        if err.lineno not in expected:
            shown = text.splitlines()[err.lineno - 1] if err.lineno else None
            problems.append(f"reported at line {err.lineno} ({shown!r}), expected line {sorted(expected)}")
    assert not problems, f"{'; '.join(problems)}: {err}"
    prefix = f"{filename}:{err.lineno}: " if err.lineno else f"{filename}: "
    assert str(err).startswith(prefix)


def test_empty_file():
    with pytest.raises(ParamsFormatError) as info:
        parse_params("", "empty.txt")
    assert info.value.filename == "empty.txt"
    assert info.value.lineno is None
    assert "ENDFILE" in info.value.message
    assert str(info.value).startswith("empty.txt: ")


def test_params_format_error_is_a_value_error():
    err = ParamsFormatError("f.txt", 12, "bad thing")
    assert isinstance(err, ValueError)
    assert str(err) == "f.txt:12: bad thing"
    assert (err.filename, err.lineno, err.message) == ("f.txt", 12, "bad thing")


def test_read_missing_file(tmp_path):
    path = tmp_path / "no-such-params.txt"
    with pytest.raises(ParamsFormatError) as info:
        read_params(path)
    assert info.value.filename == str(path)
    assert str(path) in str(info.value)
    with pytest.raises(ParamsFormatError) as info:
        read_params(tmp_path / "no-such-params.txt.gz")
    assert info.value.filename == str(tmp_path / "no-such-params.txt.gz")


def test_read_broken_file_names_the_path(tmp_path):
    path = tmp_path / "params.txt"
    path.write_text(_replace("FCUT TYPE: CUBIC", "FCUT TYPE: QUINTIC")(_text(LIQC)))
    with pytest.raises(ParamsFormatError) as info:
        read_params(path)
    assert info.value.filename == str(path)
    assert str(info.value).startswith(f"{path}:{_line_of(path.read_text(), 'QUINTIC')}: ")
