"""Tests of ``FitSystemData``: a compact fit system file stored verbatim, with its summary attributes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from aiida.common import exceptions

from aiida_chimes.chimes.fit_system import CLASSES, FitSystem
from aiida_chimes.data import FitSystemData

HEADER = "PAIRTYP: CHEBYSHEV 8 0 0\nATOM TYPES: 1\n"


def random_system(seed=0, nrows=300, ncols=12, metadata=None) -> FitSystem:
    """A system folded from random weighted rows of the three classes."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((nrows, ncols))
    b = A @ rng.standard_normal(ncols) + 0.1 * rng.standard_normal(nrows)
    classes = rng.choice(3, size=nrows, p=[0.8, 0.1, 0.1])
    system = FitSystem(ncols)
    system.add_rows(A, b, classes, rng.uniform(0.5, 2.0, nrows), natoms=rng.integers(2, 10, nrows))
    system.metadata = dict(metadata or {})
    return system


@pytest.fixture
def system_file(tmp_path):
    system = random_system(metadata={"nframes": 7, "params_header": HEADER, "weights": None})
    path = tmp_path / "fit_system.npz"
    system.save(path)
    return system, path


def test_attributes(system_file):
    system, path = system_file
    node = FitSystemData.from_file(path)
    assert node.ncols == 12
    assert node.nrows == {name: system.nrows[name] for name in (*CLASSES, "total")}
    assert node.nrows["total"] == 300
    assert node.nframes == 7
    assert node.nbytes == path.stat().st_size
    assert node.params_header_sha256 == hashlib.sha256(HEADER.encode()).hexdigest()


def test_round_trip_gives_the_same_system(system_file, tmp_path):
    system, path = system_file
    node = FitSystemData.from_file(path).store()
    loaded = node.get_fit_system()
    assert loaded.metadata == system.metadata
    x = np.linspace(-1, 1, 12)
    for c in (None, *CLASSES):
        np.testing.assert_array_equal(loaded.R(c), system.R(c))
        np.testing.assert_array_equal(loaded.qtb(c), system.qtb(c))
    np.testing.assert_equal(loaded.rmse(x), system.rmse(x))  # nan (no constraint rows) equals nan
    out = node.export(tmp_path / "copy.npz")
    assert out.read_bytes() == path.read_bytes()
    with pytest.raises(FileExistsError):
        node.export(out)


def test_without_metadata(tmp_path):
    path = tmp_path / "bare.npz"
    random_system(seed=2).save(path)
    node = FitSystemData(path)
    assert node.nframes is None and node.params_header_sha256 is None
    assert "nframes" not in node.base.attributes.keys()


def test_equal_files_hash_equal(system_file, tmp_path):
    _, path = system_file
    other = tmp_path / "other.npz"
    random_system(seed=3).save(other)
    a, b, c = (FitSystemData.from_file(p).store() for p in (path, path, other))
    assert a.base.caching.get_hash() == b.base.caching.get_hash() != c.base.caching.get_hash()
    with pytest.raises(exceptions.ModificationNotAllowed):
        a.set_file(other)


def test_bad_files(tmp_path):
    text = tmp_path / "fit_system.npz"
    text.write_text("not a zip file\n")
    with pytest.raises(ValueError, match="fit_system.npz: not a fit system written by chimes-lsq"):
        FitSystemData.from_file(text)
    other = tmp_path / "arrays.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="arrays.npz: not a fit system"):
        FitSystemData.from_file(other)
    with pytest.raises(ValueError, match="missing.npz: cannot read"):
        FitSystemData.from_file(tmp_path / "missing.npz")
    with pytest.raises(exceptions.ValidationError, match="needs its fit_system.npz"):
        FitSystemData().store()
