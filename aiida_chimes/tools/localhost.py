"""Idempotent set-up of the localhost computer and the codes of our console scripts in the current profile."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from aiida import orm
from aiida.common.exceptions import NotExistent

#: Console script -> the CalcJob plugin that runs it.
SCRIPTS = {
    "chimes-lsq": "chimes.design_matrix",
    "chimes-solve": "chimes.regression",
    "chimes-md": "chimes.md",
    "chimes-label": "chimes.label_xtb",
}


@dataclass
class CodeStatus:
    label: str
    plugin: str
    executable: str
    pk: int
    created: bool
    note: str = ""


def scripts_dir() -> Path:
    """Folder of the running interpreter's console scripts (the venv's ``bin``)."""
    return Path(sys.executable).parent


def ensure_computer(label: str = "localhost", workdir: str | None = None, mpiprocs: int | None = None):
    """The computer ``label``, created (core.local + core.direct, our venv's mpiexec) if it does not exist."""
    try:
        computer = orm.load_computer(label)
        return computer, False
    except NotExistent:
        pass
    workdir = os.path.abspath(workdir or os.path.join(os.path.expanduser("~"), "aiida_chimes_work"))
    os.makedirs(workdir, exist_ok=True)
    mpiexec = scripts_dir() / "mpiexec"
    computer = orm.Computer(
        label=label, hostname="localhost", description="this machine (aiida-chimes setup)",
        transport_type="core.local", scheduler_type="core.direct", workdir=workdir,
    )
    computer.set_mpirun_command([str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", "{tot_num_mpiprocs}"])
    computer.set_default_mpiprocs_per_machine(mpiprocs or os.cpu_count() or 1)
    computer.store()
    computer.configure(safe_interval=0.0)
    computer.set_minimum_job_poll_interval(0.5)
    return computer, True


def ensure_codes(computer) -> list[CodeStatus]:
    """One InstalledCode per console script, labelled like the script; existing codes are kept as they are."""
    out = []
    for script, plugin in SCRIPTS.items():
        executable = str(scripts_dir() / script)
        if not os.path.exists(executable):
            raise FileNotFoundError(f"{executable} not found: install aiida-chimes into this environment "
                                    "(pip install -e .) before running setup")
        try:
            code = orm.load_code(f"{script}@{computer.label}")
            note = ""
            if str(code.filepath_executable) != executable:
                note = f"kept; it runs {code.filepath_executable}, not {executable}"
            out.append(CodeStatus(script, plugin, str(code.filepath_executable), code.pk, False, note))
        except NotExistent:
            code = orm.InstalledCode(label=script, computer=computer, filepath_executable=executable,
                                     default_calc_job_plugin=plugin,
                                     description=f"aiida-chimes console script for {plugin}")
            code.store()
            out.append(CodeStatus(script, plugin, executable, code.pk, True))
    return out


def load_chimes_code(script: str, computer: str = "localhost"):
    """The code of one of our console scripts (run ``aiida-chimes setup`` first)."""
    try:
        return orm.load_code(f"{script}@{computer}")
    except NotExistent:
        raise NotExistent(f"no code {script}@{computer}: run `aiida-chimes setup` in this profile first") from None
