"""``aiida-chimes potential``: list, export and show (tile tree, provenance) ``ChimesPotentialData`` nodes."""

import pathlib

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import types
from aiida.cmdline.utils import decorators, echo

from .utils import reported_errors

POTENTIAL = types.DataParamType(sub_classes=("aiida.data:chimes.potential",))


@click.group("potential", cls=VerdiCommandGroup)
def cmd_potential():
    """Inspect and export ChIMES potentials (ChimesPotentialData)."""


@cmd_potential.command("list")
@decorators.with_dbenv()
def potential_list():
    """List the stored potentials: pk, elements, tiles, non-zero coefficients, label."""
    from aiida import orm
    from tabulate import tabulate

    from aiida_chimes.data import ChimesPotentialData

    qb = orm.QueryBuilder().append(
        ChimesPotentialData, tag="p",
        project=["id", "attributes.elements", "attributes.tiles", "attributes.n_nonzero", "label"],
    ).order_by({"p": {"id": "asc"}})
    rows = [[pk, " ".join(els or []), " ".join("-".join(t) for t in tiles or []), n, label]
            for pk, els, tiles, n, label in qb.iterall()]
    if not rows:
        echo.echo_report("no ChimesPotentialData stored yet")
        return
    echo.echo(tabulate(rows, headers=["PK", "Elements", "Tiles", "Non-zero", "Label"]))


@cmd_potential.command("export")
@click.argument("potential", type=POTENTIAL)
@click.argument("file", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@click.option("-f", "--force", is_flag=True, help="Overwrite FILE if it exists.")
@decorators.with_dbenv()
def potential_export(potential, file, force):
    """Write the parameter file of POTENTIAL (pk, uuid or label) to FILE."""
    with reported_errors():
        potential.export(file, overwrite=force)
    echo.echo_success(f"wrote {potential.__class__.__name__}<{potential.pk}> to {file}")


from .potential_show import cmd_potential_provenance, cmd_potential_show  # noqa: E402  (after the group)

cmd_potential.add_command(cmd_potential_show)
cmd_potential.add_command(cmd_potential_provenance)
