"""Tests of the ``aiida-chimes potential`` and ``aiida-chimes trainingset`` commands (click's CliRunner)."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from click.testing import CliRunner

from aiida_chimes.cli import cmd_root
from aiida_chimes.data import ChimesPotentialData, TrainingSetData
from tests.helpers import DATA_DIR, hierarch_params_path, read_text

CN_XYZF, CN_TEMPS = DATA_DIR / "xyzf" / "CN_2frames.xyzf", DATA_DIR / "xyzf" / "CN_2frames.temps"


@pytest.fixture
def run_cli(aiida_profile):
    """Invoke ``aiida-chimes`` on the test profile; returns the click Result."""

    def run(*args, ok=True):
        result = CliRunner().invoke(cmd_root, ["-p", aiida_profile.name, *map(str, args)])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_potential_list_and_export(run_cli, tmp_path):
    node = ChimesPotentialData(hierarch_params_path("C.params.txt.reduced"), label="C tile").store()
    listing = run_cli("potential", "list").output
    row = next(line for line in listing.splitlines() if line.split()[:1] == [str(node.pk)])
    assert row.split()[1:] == ["C", "C", str(node.n_nonzero), "C", "tile"]
    out = tmp_path / "exported.txt"
    run_cli("potential", "export", node.pk, out)
    assert out.read_text() == read_text(hierarch_params_path("C.params.txt.reduced"))
    again = run_cli("potential", "export", node.pk, out, ok=False)
    assert again.exit_code != 0 and "exists already" in again.output
    run_cli("potential", "export", "--force", node.uuid, out)


def test_potential_export_rejects_other_node_types(run_cli, tmp_path):
    other = orm.Int(3).store()
    result = run_cli("potential", "export", other.pk, tmp_path / "x.txt", ok=False)
    assert result.exit_code == 2 and f"no ChimesPotentialData found with ID<{other.pk}>" in result.output


def test_verdi_style_options(run_cli):
    """``-v`` comes from VerdiCommandGroup, on every subcommand; the profile default works without ``-p``."""
    assert run_cli("potential", "list", "-v", "warning").exit_code == 0
    assert CliRunner().invoke(cmd_root, ["potential", "list"]).exit_code == 0


def test_trainingset_import_show_export(run_cli, tmp_path):
    result = run_cli("trainingset", "import", CN_XYZF, "--temps", CN_TEMPS, "--label", "CN start")
    pk = int(result.stdout.strip().splitlines()[-1])
    node = orm.load_node(pk)
    assert isinstance(node, TrainingSetData) and node.label == "CN start" and node.nframes == 2
    ref = TrainingSetData.from_xyzf(CN_XYZF, temps_path=CN_TEMPS)
    assert node.base.repository.get_object_content("frames.npz", "rb") == \
        ref.base.repository.get_object_content("frames.npz", "rb")

    shown = run_cli("trainingset", "show", pk).output
    assert "Frames       2" in shown and "432 (216 to 216 per frame)" in shown and "Elements     C N" in shown

    out, temps = tmp_path / "out.xyzf", tmp_path / "out.temps"
    run_cli("trainingset", "export", pk, out, "--temps", temps)
    back = TrainingSetData.from_xyzf(out, temps_path=temps).get_frameset()
    np.testing.assert_allclose(back.forces, ref.get_frameset().forces, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(back.electronic_temperature, [6000.0, 6000.0])

    run_cli("trainingset", "export", pk, tmp_path / "out.extxyz")
    pk2 = int(run_cli("trainingset", "import", tmp_path / "out.extxyz").stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(orm.load_node(pk2).get_frameset().energy, ref.get_frameset().energy)


def test_trainingset_format_option_and_guessing(run_cli, tmp_path):
    odd = tmp_path / "frames.dat"
    odd.write_text(CN_XYZF.read_text())
    result = run_cli("trainingset", "import", odd, ok=False)
    assert result.exit_code == 2 and "cannot guess the format" in result.output
    pk = int(run_cli("trainingset", "import", odd, "--format", "xyzf").stdout.strip().splitlines()[-1])
    assert orm.load_node(pk).nframes == 2
    result = run_cli("trainingset", "import", tmp_path / "x.extxyz", "--temps", CN_TEMPS, ok=False)
    assert result.exit_code == 2


def test_bad_files_give_a_message_not_a_traceback(run_cli, tmp_path):
    lines = CN_XYZF.read_text().splitlines()
    lines[1] = "NON_ORTHO 1 2 3"
    bad = tmp_path / "bad.xyzf"
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli("trainingset", "import", bad, ok=False)
    assert result.exit_code == 1
    assert f"Error: {bad}:2: 3 numbers on the cell line" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)

    no_temps = run_cli("trainingset", "import", DATA_DIR / "xyzf" / "C64_2frames.xyzf").stdout.splitlines()[-1]
    result = run_cli("trainingset", "export", no_temps, tmp_path / "o.xyzf", "--temps", tmp_path / "o.temps",
                     ok=False)
    assert result.exit_code == 1 and "no electronic temperature" in result.output

