"""SPECIAL 3B/4B S_MINIM (many-body inner cutoffs): parsed, applied per cluster type, derivatives consistent.

No official test file uses them, so a file is derived from an official one by adding the lines.
"""

import numpy as np
import pytest

from aiida_chimes.chimes import ChimesModel
from aiida_chimes.chimes.params import parse_params
from tests.chimes.test_evaluate import assert_consistent, assert_derivatives
from tests.helpers import force_field_path, read_text

CARBON = "published_params.Carbon-2.0.Small.2+3+4b.Tersoff.txt"
HN3 = "published_params.HN3.2+3+4b.Tersoff.special.offsets.txt"


def with_lines(name: str, lines: str, after: str) -> ChimesModel:
    text = read_text(force_field_path(name))
    assert after in text
    return ChimesModel(parse_params(text.replace(after, after + "\n" + lines + "\n", 1), f"{name}+S_MINIM"))


def test_inner_cutoffs_reach_the_tables_and_change_the_energy():
    plain = ChimesModel(force_field_path(CARBON))
    special = with_lines(CARBON, "SPECIAL 3B S_MINIM: ALL 1.6\n\nSPECIAL 4B S_MINIM: SPECIFIC 1\n"
                         "CCCCCCCCCCCC CC CC CC CC CC CC 1.5 1.5 1.5 1.5 1.5 1.5", "FCUT TYPE: TERSOFF 0.75")
    np.testing.assert_array_equal(plain.t3.rin, 0.98)
    np.testing.assert_array_equal(special.t3.rin, 1.6)
    np.testing.assert_array_equal(special.t4.rin, 1.5)
    np.testing.assert_array_equal(special.t4.rout, 3.125)
    # a compact cluster: many pairs between the 2-body (0.98) and the special inner cutoffs (1.5 / 1.6)
    cell = np.diag([6.0, 6.2, 6.4]) + np.array([[0, 0.3, 0], [0.2, 0, 0], [0, 0.1, 0]])
    rng = np.random.default_rng(3)
    pos = np.array([[0, 0, 0], [1.3, 0.1, 0], [0.4, 1.25, 0.2], [0.5, 0.4, 1.35], [1.9, 1.5, 1.1]]) + 2.0
    pos += rng.uniform(-0.02, 0.02, pos.shape)
    symbols = ["C"] * 5
    a = plain.evaluate(symbols, pos, cell)
    b = special.evaluate(symbols, pos, cell)
    assert abs(a.energy - b.energy) > 1.0  # the continuation below the inner cutoff is really used
    assert_consistent(b)
    assert_derivatives(special, symbols, pos, cell)


def test_official_reader_quirk_unlisted_quads_get_inner_cutoff_minus_one():
    """chimesFF: with '4B S_MINIM: SPECIFIC', quads that are not listed get inner cutoff -1 (3B keeps 2-body)."""
    m = with_lines(HN3, "SPECIAL 3B S_MINIM: SPECIFIC 1\nNNNNNN NN NN NN 1.1 1.1 1.1\n\n"
                   "SPECIAL 4B S_MINIM: SPECIFIC 1\nNNNNNNNNNNNN NN NN NN NN NN NN 1.2 1.2 1.2 1.2 1.2 1.2",
                   "SPECIAL 4B S_MAXIM: ALL 4.0")
    nnnn = m.params.quadruplets[0]
    assert nnnn.atoms == ("N", "N", "N", "N")
    np.testing.assert_array_equal(m.t4.rin[0], 1.2)
    np.testing.assert_array_equal(m.t4.rin[1:], -1.0)
    nnn = [b.index for b in m.params.triplets if b.atoms == ("N", "N", "N")][0]
    np.testing.assert_array_equal(m.t3.rin[nnn], 1.1)
    others = [b.index for b in m.params.triplets if b.index != nnn]
    pair_rmin = {p.name: p.s_minim for p in m.params.pairs} | {p.atom2 + p.atom1: p.s_minim for p in m.params.pairs}
    for t in others:
        expected = [pair_rmin[name] for name in m.params.triplets[t].pairs]
        assert m.t3.rin[t].tolist() == pytest.approx(expected)
