"""al_driver weight styles A-G, class/gas selection, defaults and the weights file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_chimes.chimes.weights import (
    DEFAULT_WEIGHTS,
    read_weights_file,
    row_weights,
    style_factor,
    weight_values,
    write_weights_file,
)

X = np.array([-2.0, 0.5, 3.0])
NAT = np.array([4, 8, 16])


@pytest.mark.parametrize(
    ("style", "params", "alc", "expected"),
    [
        ("A", [2.5], 0, [2.5, 2.5, 2.5]),
        ("B", [2.0, -1.0], 0, [2.0, 2.0, 2.0]),  # ALC 0 counts as 1
        ("B", [2.0, -1.0], 4, [0.5, 0.5, 0.5]),
        ("B", [3.0, 2.0], 3, [27.0, 27.0, 27.0]),
        ("C", [2.0, 1.0, 4.0], 0, [2 * math.exp(0.5), 2 * math.exp(0.125), 2 * math.exp(0.75)]),
        ("D", [1.5, 2.0, 1.0, 4.0], 0, [1.5 * math.exp(-1.5), 1.5 * math.exp(-0.25), 1.5 * math.exp(1.0)]),
        ("E", [-1.0], 0, [0.25, 0.125, 0.0625]),
        ("E", [0.5], 0, [2.0, math.sqrt(8), 4.0]),
        ("F", [2.0, 1.0, 0.5, 0.25], 0, [2 * math.exp(-4.0), 2 * math.exp(-1.75), 2 * math.exp(-1.25)]),
        ("G", [2.0, -1.0, 1.0, 2.0], 0, [2 * math.exp(-0.5), 2 * math.exp(0.25), 2 * math.exp(-1.0)]),
    ],
)
def test_styles_hand_computed(style, params, alc, expected):
    got = style_factor(style, params, X, NAT, alc)
    assert np.allclose(got, expected, rtol=1e-14, atol=0)
    assert np.allclose(style_factor(style.lower(), params, X, NAT, alc), expected, rtol=1e-14)


def test_styles_multiply():
    spec = [["A", "B", "E"], [[0.3], [1.0, -1.0], [-1.0]]]
    got = weight_values(spec, X, NAT, alc=2)
    assert np.allclose(got, 0.3 * 0.5 / NAT)
    assert np.allclose(weight_values(["C", [1.0, 1.0, 2.0]], X), np.exp(np.abs(X) / 2))  # single-style form
    assert np.allclose(weight_values(7.0, X), 7.0)
    assert np.allclose(weight_values("0.5", X), 0.5)


def test_style_errors():
    with pytest.raises(ValueError, match="unknown weight style"):
        style_factor("H", [1.0], X)
    with pytest.raises(ValueError, match="parameter"):
        style_factor("C", [1.0, 2.0], X)
    with pytest.raises(ValueError, match="natoms"):
        style_factor("E", [1.0], X)
    with pytest.raises(ValueError, match="does not match"):
        weight_values([["A", "B"], [[1.0]]], X)
    with pytest.raises(ValueError, match="unknown weight classes"):
        row_weights([0], [1.0], spec={"forces": 1.0})
    with pytest.raises(ValueError):
        row_weights([3], [1.0])


def test_defaults_and_gas():
    assert DEFAULT_WEIGHTS == {"force": 1.0, "force_gas": 5.0, "energy": 0.1, "energy_gas": 0.01, "stress": 250.0}
    classes = np.array([0, 0, 1, 2, 0, 1, 2])
    gas = np.array([False, True, False, False, True, True, True])
    b = np.arange(7.0)
    w = row_weights(classes, b, gas=gas)
    assert np.array_equal(w, [1.0, 5.0, 0.1, 250.0, 5.0, 0.01, 250.0])  # stress has no gas variant
    assert np.array_equal(row_weights(classes, b), [1.0, 1.0, 0.1, 250.0, 1.0, 0.1, 250.0])
    names = np.array(["force", "force", "energy", "stress", "force", "energy", "stress"])
    assert np.array_equal(row_weights(names, b, gas=gas), w)


def test_row_weights_with_styles():
    classes = np.array([0, 0, 2, 1, 1])
    b = np.array([1.0, -3.0, 0.2, -40.0, -80.0])
    natoms = np.array([10, 10, 10, 10, 20])
    spec = {
        "force": [["A", "C"], [[2.0], [1.0, 1.0, 2.0]]],
        "energy": [["A", "E"], [[0.5], [-1.0]]],
        "stress": 100.0,
    }
    w = row_weights(classes, b, natoms, spec, alc=3)
    expected = [2 * math.exp(0.5), 2 * math.exp(1.5), 100.0, 0.5 / 10, 0.5 / 20]
    assert np.allclose(w, expected, rtol=1e-14)


def test_weights_file_round_trip(tmp_path):
    w = np.array([1.0, 0.1, 250.0, 1 / 3, 5e-7])
    path = tmp_path / "weights.dat"
    write_weights_file(path, w)
    assert len(path.read_text().splitlines()) == len(w)
    assert np.array_equal(read_weights_file(path), w)
    single = tmp_path / "one.dat"
    single.write_text("0.25\n")
    assert np.array_equal(read_weights_file(single), [0.25])
