"""Fixtures for CalcJob tests: codes for our console scripts on the test localhost, small training data."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA_DIR

BIN = Path(sys.executable).parent


def script_path(name: str) -> str:
    """Absolute path of one of our console scripts in the running environment."""
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {BIN} (pip install -e .)")
    return str(path)


@pytest.fixture
def chimes_code(aiida_code_installed, aiida_localhost):
    """Factory: an InstalledCode running console script ``name`` for CalcJob plugin ``plugin``."""
    aiida_localhost.set_mpirun_command([str(BIN / "mpiexec"), "-n", "{tot_num_mpiprocs}"])

    def factory(name: str, plugin: str, executable: str | None = None):
        label = f"{name}-{plugin}".replace(".", "_")
        if executable is not None:  # one code per fake script (codes are looked up by label)
            label += "-" + Path(executable).stem + "-" + str(abs(hash(executable)) % 10**8)
        return aiida_code_installed(label=label, default_calc_job_plugin=plugin,
                                    filepath_executable=executable or script_path(name), computer=aiida_localhost)

    return factory


@pytest.fixture
def fake_script(tmp_path):
    """Factory: an executable bash script with the given body (to provoke each exit code of a parser)."""

    def factory(body: str, name: str = "fake.sh") -> str:
        path = tmp_path / name
        path.write_text("#!/bin/bash\n" + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
        return str(path)

    return factory


@pytest.fixture
def cn_training_set():
    """The 2 C/N frames (216 atoms, energies, forces, full stress) as a TrainingSetData node."""
    from aiida_chimes.data.training_set import TrainingSetData

    return TrainingSetData.from_xyzf(DATA_DIR / "xyzf" / "CN_2frames.xyzf")


#: Small C/N fit settings (2-body 8, 3-body 4) so that a CalcJob builds its rows in about a second.
CN_SETTINGS = {
    "types": ["C", "N"],
    "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 4.5, "morse_lambda": 1.4},
              "N-N": {"s_minim": 0.86, "s_maxim": 4.5, "morse_lambda": 1.09},
              "C-N": {"s_minim": 0.90, "s_maxim": 4.5, "morse_lambda": 1.34}},
    "orders": [8, 4, 0],
    "fit_energy": True,
    "fit_stress": "all",
    "special": {"3B S_MAXIM": 3.5},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}


def run_options(nprocs: int = 1, withmpi: bool = False) -> dict:
    return {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": nprocs},
                        "withmpi": withmpi, "max_wallclock_seconds": 600}}


os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def cn_fit_system(tmp_path, cn_training_set):
    """FitSystemData of the 2 C/N frames with CN_SETTINGS, built directly with the core library."""
    from aiida_chimes.chimes.fit_build import attach_metadata, build_fit_system
    from aiida_chimes.chimes.fit_settings import setup_from_settings
    from aiida_chimes.data.fit_system import FitSystemData

    fs = cn_training_set.get_frameset()
    fs.write_xyzf(tmp_path / "cn.xyzf")
    setup = setup_from_settings(CN_SETTINGS, [("cn.xyzf", len(fs))], base_dir=str(tmp_path))
    system, _ = build_fit_system(setup)
    attach_metadata(system, setup)
    system.save(tmp_path / "fit_system.npz")
    return FitSystemData.from_file(tmp_path / "fit_system.npz")
