"""``chimes-md`` console script: files it writes, exit codes 0 / 2 / 3, one-line input errors naming file and key."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.chimes.io.configuration import read_chimes_configuration_atoms
from aiida_chimes.chimes.io.xyzf import read_xyzf
from aiida_chimes.scripts.md import main
from tests.helpers import CHIMES_CALCULATOR_DIR, DATA_DIR, force_field_path

LIQC_CONFIG = "liqC.2.5gcc_6000K.OUTCAR_#000.xyz"
OUTPUTS = ("trajectory.npz", "thermo.npz", "final.npz", "final_velocities.npy", "md_summary.json")
SETTINGS = {"ensemble": "nvt", "thermostat": "langevin", "temperature": 5000, "timestep": 0.5, "steps": 10,
            "output_interval": 5, "seed": 3, "friction": 0.02, "penalty": {"max_pairs": 0},
            "blowup": {"min_distance": 0.5, "max_temperature_factor": 10}, "num_threads": 1,
            "tags": {"T": 5000}}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A folder with params.txt and structure.npz (200-atom liquid carbon)."""
    folder = tmp_path_factory.mktemp("md_inputs")
    with gzip.open(force_field_path("published_params.liqC.2+3b.cubic.txt"), "rb") as handle:
        (folder / "params.txt").write_bytes(handle.read())
    atoms = read_chimes_configuration_atoms(CHIMES_CALCULATOR_DIR / "configurations" / LIQC_CONFIG)
    FrameSet.from_atoms([atoms]).save(folder / "structure.npz")
    return folder


@pytest.fixture
def job(prepared, tmp_path):
    """A fresh run folder holding the inputs and md.json (SETTINGS); returns a writer for md.json."""
    for name in ("params.txt", "structure.npz"):
        shutil.copy(prepared / name, tmp_path / name)

    def write(**changes):
        settings = {**SETTINGS, **changes}
        settings = {k: v for k, v in settings.items() if v is not None}
        (tmp_path / "md.json").write_text(json.dumps(settings))
        return str(tmp_path / "md.json")

    return tmp_path, write


def test_run_writes_documented_files(job, capsys):
    folder, write = job
    assert main([write()]) == 0
    for name in OUTPUTS:
        assert (folder / name).is_file(), name
    summary = json.loads((folder / "md_summary.json").read_text())
    assert summary["status"] == "completed" and summary["reason"] is None
    assert summary["steps_done"] == 10 and summary["frames"] == 3
    assert {"penalty_frames", "max_penalty_pairs", "mean_temperature", "wall_seconds",
            "seconds_per_step"} <= set(summary)
    assert "nve_drift_meV_per_atom_per_ps" not in summary  # NVT
    traj = FrameSet.load(folder / "trajectory.npz")
    assert [t["step"] for t in traj.tags] == [0, 5, 10] and traj.tags[0]["state_point"] == {"T": 5000}
    out = capsys.readouterr().out
    assert "step        10/10" in out and "completed 10 steps" in out


def test_velocities_file_replaces_temperature(job):
    folder, write = job
    nve = {"ensemble": "nve", "thermostat": None, "friction": None, "temperature": None, "steps": 2}
    assert main([write(**nve)]) == 2  # neither temperature nor velocities.npy
    np.save(folder / "velocities.npy", np.zeros((200, 3)))
    assert main([write(**nve)]) == 0
    assert json.loads((folder / "md_summary.json").read_text())["mean_temperature"] < 100


def test_blowup_exit_3_keeps_frames(job, capsys):
    folder, write = job
    assert main([write(ensemble="nve", thermostat=None, friction=None, timestep=5.0, steps=100, seed=1,
                       output_interval=1)]) == 3
    summary = json.loads((folder / "md_summary.json").read_text())
    assert summary["status"] == "blowup" and summary["reason"]
    traj = FrameSet.load(folder / "trajectory.npz")
    assert len(traj) == summary["frames"] == summary["steps_done"] + 1 >= 2
    assert "blow-up" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "md.json: unknown key 'colour'"),
    ({"steps": -1}, "md.json: key 'steps' must be >= 0"),
    ({"friction": None, "thermostat": "bussi", "tau": "fast"}, "md.json: key 'tau' must be a finite number"),
])
def test_bad_settings_exit_2(job, capsys, change, message):
    _, write = job
    assert main([write(**change)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(("breakage", "message"), [
    ("no_params", "params.txt: file not found"),
    ("bad_params", "params.txt:"),
    ("no_structure", "structure.npz: file not found"),
    ("two_frames", "structure.npz: holds 2 frames"),
    ("water", "structure.npz: elements ['H', 'O'] are not in params.txt"),
    ("bad_velocities", "velocities.npy: expected finite (200, 3)"),
    ("bad_json", "md.json: not valid JSON"),
    ("fitcoul", "params.txt: FITCOUL true but no 'q_A x q_B value' line for pair type(s) CC"),
    ("fitcoul_tilted", "structure.npz: params.txt has fitted charges (FITCOUL true), whose Ewald Coulomb sum needs "
                       "a fully periodic orthorhombic cell"),
])
def test_bad_files_exit_2(job, capsys, breakage, message):
    folder, write = job
    path = write()
    if breakage == "no_params":
        (folder / "params.txt").unlink()
    elif breakage == "bad_params":
        (folder / "params.txt").write_text("this is not a ChIMES parameter file\n")
    elif breakage == "no_structure":
        (folder / "structure.npz").unlink()
    elif breakage == "two_frames":
        one = FrameSet.load(folder / "structure.npz")
        FrameSet.concatenate([one, one]).save(folder / "structure.npz")
    elif breakage == "water":
        from ase.build import molecule

        FrameSet.from_atoms([molecule("H2O")]).save(folder / "structure.npz")
    elif breakage == "bad_velocities":
        np.save(folder / "velocities.npy", np.zeros((3, 3)))
    elif breakage == "bad_json":
        (folder / "md.json").write_text("{ensemble: nve")
    elif breakage == "fitcoul":
        text = (folder / "params.txt").read_text()
        (folder / "params.txt").write_text(text.replace("FITCOUL: false", "FITCOUL: true", 1))
    elif breakage == "fitcoul_tilted":  # the official FITCOUL water fit on a water box with a tilted cell
        case = DATA_DIR / "chimes_lsq" / "h2o-2bcheby"
        shutil.copy(case / "correct_output" / "params.txt", folder / "params.txt")
        (folder / "input.xyzf").write_text(gzip.open(case / "inputs" / "input.xyzf.gz", "rt").read())
        frame = read_xyzf(folder / "input.xyzf")[0]
        cell = frame.cell.copy()
        cell[1, 0] = 0.5
        FrameSet.from_atoms([Atoms(frame.symbols, positions=frame.positions, cell=cell, pbc=True)]).save(
            folder / "structure.npz")
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (folder / "md_summary.json").exists()


def test_console_script(job):
    """The installed entry point (a separate process): a zero-step run writes the files and exits 0."""
    folder, write = job
    exe = Path(sys.executable).with_name("chimes-md")
    if not exe.exists():
        pytest.skip("chimes-md is not installed in this environment (pip install -e .)")
    write(steps=0)
    proc = subprocess.run([str(exe), "md.json"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((folder / "md_summary.json").read_text())["frames"] == 1
