"""``aiida-chimes setup``: creates the computer and the four codes once; a second run changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from aiida import orm
from click.testing import CliRunner

from aiida_chimes.cli import cmd_root
from aiida_chimes.tools.localhost import SCRIPTS


def test_setup_is_idempotent(aiida_profile_clean, tmp_path):
    args = ["-p", aiida_profile_clean.name, "setup", "--computer", "chimes-test", "--workdir", str(tmp_path / "w")]
    first = CliRunner().invoke(cmd_root, args)
    assert first.exit_code == 0, first.output
    assert "created computer chimes-test" in first.output
    computer = orm.load_computer("chimes-test")
    assert computer.transport_type == "core.local" and computer.scheduler_type == "core.direct"
    assert computer.get_mpirun_command()[0] == str(Path(sys.executable).parent / "mpiexec")
    for script, plugin in SCRIPTS.items():
        code = orm.load_code(f"{script}@chimes-test")
        assert code.default_calc_job_plugin == plugin
        assert str(code.filepath_executable) == str(Path(sys.executable).parent / script)
    n_codes = orm.QueryBuilder().append(orm.InstalledCode).count()
    second = CliRunner().invoke(cmd_root, args)
    assert second.exit_code == 0, second.output
    assert "using computer chimes-test" in second.output and "created" not in second.output.replace(
        "created computer", "")
    assert orm.QueryBuilder().append(orm.InstalledCode).count() == n_codes
