"""Paths to the checked-in test data (see ``tests/data/README.md`` for where every file came from)."""

from __future__ import annotations

import gzip
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
FORCE_FIELDS_DIR = DATA_DIR / "force_fields"
HIERARCH_PARAMS_DIR = DATA_DIR / "hierarch_params"
CHIMES_CALCULATOR_DIR = DATA_DIR / "chimes_calculator"

#: The 21 official parameter files of chimes_calculator ``serial_interface/tests/force_fields``
#: (stored gzip-compressed as ``<name>.gz``).
FORCE_FIELDS = [
    "inprep_params.DNTF.2+3b.Tersoff.offsets.txt",
    "published_params.CHON.2+3b.Tersoff.txt",
    "published_params.CN-hierarch.2+3+4b.Tersoff.txt",
    "published_params.CO2400K.2+3+4b.Tersoff.special.offsets.txt",
    "published_params.Carbon-2.0.Large.2+3+4b.Tersoff.txt",
    "published_params.Carbon-2.0.Small.2+3+4b.Tersoff.txt",
    "published_params.DNTF.2+3b.Tersoff.offsets.DFTB.txt",
    "published_params.HN3.2+3+4b.Tersoff.special.offsets.txt",
    "published_params.Nitrogen-reshock.2+3+4b.Tersoff.txt",
    "published_params.ambH2O.2+3b.cubic.txt",
    "published_params.liqC.2+3b.cubic.txt",
    "published_params.liqC.2b.cubic.txt",
    "published_params.liqC.2bsig.cubic.txt",
    "published_params.liqC6000K.2+3b.cubic.txt",
    "published_params.liqCO.2+3b.cubic.txt",
    "test_params.CHON.txt",
    "test_params.HN3.penalty.txt",
    "test_params.h2o_2bcheby.txt",
    "validated_params.CO2400K.2+3+4b.Tersoff.special.offsets.relabel.txt",
    "validated_params.TiO2.2+3b.Tersoff.txt",
    "validated_params.liqCO.2+3b.cubic.txt",
]

#: The pre-fitted single-element tiles of the al_driver hierarchical C/N example (``<name>.gz``).
HIERARCH_PARAMS = ["C.params.txt.reduced", "N.params.txt.reduced"]


def force_field_path(name: str) -> Path:
    """Path of the gzip copy of an official parameter file, e.g. ``published_params.liqC.2b.cubic.txt``."""
    path = FORCE_FIELDS_DIR / f"{name}.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no test force field {name!r} (looked for {path})")
    return path


def hierarch_params_path(name: str) -> Path:
    """Path of the gzip-compressed copy of a hierarchical tile, e.g. ``C.params.txt.reduced``."""
    path = HIERARCH_PARAMS_DIR / f"{name}.gz"
    if not path.is_file():
        raise FileNotFoundError(f"no test hierarchical parameter file {name!r} (looked for {path})")
    return path


def read_text(path: Path | str) -> str:
    """Text of a data file, decompressed when it is named ``*.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as handle:
            return handle.read()
    return path.read_text()
