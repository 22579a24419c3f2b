"""``aiida-chimes trainingset``: import, export and show ``TrainingSetData`` nodes."""

import pathlib

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import types
from aiida.cmdline.utils import decorators, echo

from .utils import reported_errors

TRAINING_SET = types.DataParamType(sub_classes=("aiida.data:chimes.training_set",))
#: File extension -> format, for guessing ``--format``.
FORMATS = {".xyzf": "xyzf", ".xyz": "extxyz", ".extxyz": "extxyz"}
INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=pathlib.Path)
OUTPUT_FILE = click.Path(dir_okay=False, path_type=pathlib.Path)


def _guess_format(path: pathlib.Path, given: str | None) -> str:
    if given is not None:
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise click.UsageError(f"cannot guess the format of {path} from its extension ({', '.join(FORMATS)}): "
                               "pass --format xyzf|extxyz")
    return fmt


@click.group("trainingset", cls=VerdiCommandGroup)
def cmd_training_set():
    """Import, export and inspect training sets (TrainingSetData)."""


@cmd_training_set.command("import")
@click.argument("file", type=INPUT_FILE)
@click.option("--temps", type=INPUT_FILE, help="Electronic temperatures (.temps, one per frame; xyzf only).")
@click.option("--format", "fmt", type=click.Choice(["xyzf", "extxyz"]), help="Default: guessed from the extension.")
@click.option("--label", default="", help="Label of the new node.")
@decorators.with_dbenv()
def training_set_import(file, temps, fmt, label):
    """Store the frames of FILE as a TrainingSetData and print its pk."""
    from aiida_chimes.data import TrainingSetData

    fmt = _guess_format(file, fmt)
    if temps is not None and fmt != "xyzf":
        raise click.UsageError("--temps goes with an .xyzf file; extxyz frames carry info['electronic_temperature']")
    with reported_errors():
        if fmt == "xyzf":
            node = TrainingSetData.from_xyzf(file, temps_path=temps, label=label)
        else:
            node = TrainingSetData.from_extxyz(file, label=label)
    node.store()
    echo.echo_report(f"stored {node.nframes} frames of {file} as TrainingSetData<{node.pk}>", err=True)
    echo.echo(str(node.pk))


@cmd_training_set.command("export")
@click.argument("training_set", type=TRAINING_SET)
@click.argument("file", type=OUTPUT_FILE)
@click.option("--temps", type=OUTPUT_FILE, help="Also write the electronic temperatures (.temps; xyzf only).")
@click.option("--format", "fmt", type=click.Choice(["xyzf", "extxyz"]), help="Default: guessed from the extension.")
@decorators.with_dbenv()
def training_set_export(training_set, file, temps, fmt):
    """Write the frames of TRAINING_SET (pk, uuid or label) to FILE (.xyzf or extended XYZ)."""
    fmt = _guess_format(file, fmt)
    if temps is not None and fmt != "xyzf":
        raise click.UsageError("--temps goes with an .xyzf file")
    with reported_errors():
        if fmt == "xyzf":
            training_set.export_xyzf(file, temps_path=temps)
        else:
            training_set.export_extxyz(file)
    echo.echo_success(f"wrote {training_set.nframes} frames of TrainingSetData<{training_set.pk}> to {file}")


@cmd_training_set.command("show")
@click.argument("training_set", type=TRAINING_SET)
@decorators.with_dbenv()
def training_set_show(training_set):
    """Summary of TRAINING_SET: frames, atoms, elements, observables, units, tags."""
    node = training_set
    lo_hi = node.natoms_per_frame or [0, 0]
    lines = [
        ("PK", node.pk), ("UUID", node.uuid), ("Label", node.label),
        ("Frames", node.nframes), ("Atoms", f"{node.natoms} ({lo_hi[0]} to {lo_hi[1]} per frame)"),
        ("Elements", " ".join(node.elements)),
        ("Observables", ", ".join(f"{k}: {v}" for k, v in node.observables.items())),
        ("Units", ", ".join(f"{k}: {v}" for k, v in node.units.items())),
    ]
    for key, counts in node.tags_summary.items():
        lines.append((f"Tag {key}", ", ".join(f"{v}: {n}" for v, n in counts.items())))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        echo.echo(f"{key:<{width}}  {value}")
