"""``chimes-label`` console script: files it writes, exit codes 0 / 2 / 4, one-line input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk, molecule

from aiida_chimes.chimes.frames import FrameSet
from aiida_chimes.scripts.label import main


@pytest.fixture
def job(tmp_path):
    """A folder with structures.npz (an 8-atom C6N2 cell and N2); returns a writer for label.json."""
    cell = bulk("C", "diamond", a=3.57, cubic=True)
    cell.numbers[::4] = 7
    cell.positions += np.random.default_rng(0).normal(0.0, 0.1, cell.positions.shape)
    FrameSet.from_atoms([cell, molecule("N2")], tags=[{"origin": "md"}, {"origin": "gas"}]).save(
        tmp_path / "structures.npz")

    def write(settings):
        (tmp_path / "label.json").write_text(json.dumps(settings))
        return str(tmp_path / "label.json")

    return tmp_path, write


def test_run_writes_documented_files(job):
    folder, write = job
    assert main([write({"method": "GFN1-xTB", "electronic_temperature": 1000, "accuracy": 1.0,
                        "max_iterations": 250, "stress": True, "num_threads": 1})]) == 0
    labelled = FrameSet.load(folder / "labelled.npz")
    report = json.loads((folder / "label_report.json").read_text())
    assert report["method"] == "GFN1-xTB" and report["n_input"] == report["n_converged"] == len(labelled) == 2
    assert report["failed"] == [] and report["seconds_per_frame"] > 0 and report["wall_seconds"] > 0
    assert labelled.electronic_temperature.tolist() == [1000.0, 1000.0]
    assert labelled.has_stress().tolist() == [True, False]  # periodic cell yes, molecule no
    assert labelled.tags[0] == {"origin": "md", "reference": "GFN1-xTB", "source_index": 0}


def test_partial_failure_exit_0_and_none_converged_exit_4(job, capsys):
    folder, write = job
    assert main([write({"max_iterations": 4})]) == 0  # N2 converges in 3 iterations, the cell does not
    report = json.loads((folder / "label_report.json").read_text())
    assert report["n_converged"] == 1 and [f["index"] for f in report["failed"]] == [0]
    assert "frame 0 failed: SCF not converged" in capsys.readouterr().err
    assert main([write({"max_iterations": 1})]) == 4
    report = json.loads((folder / "label_report.json").read_text())
    assert report["n_converged"] == 0 and len(report["failed"]) == 2
    assert len(FrameSet.load(folder / "labelled.npz")) == 0


@pytest.mark.parametrize(("settings", "message"), [
    ({"method": "PBE"}, "label.json: key 'method' must be one of"),
    ({"temperature": 300}, "label.json: unknown key 'temperature'"),
    ("not json", "label.json: not valid JSON"),
    (None, "structures.npz: file not found"),
])
def test_bad_input_exit_2(job, capsys, settings, message):
    folder, write = job
    if settings is None:
        (folder / "structures.npz").unlink()
        path = write({})
    elif isinstance(settings, str):
        path = write({})
        (folder / "label.json").write_text(settings)
    else:
        path = write(settings)
    assert main([path]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (folder / "label_report.json").exists()


def test_missing_settings_file_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "label.json")]) == 2
    assert "label.json: file not found" in capsys.readouterr().err
