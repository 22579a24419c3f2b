"""The ``aiida-chimes`` command line: a ``VerdiCommandGroup``, so ``-p/--profile`` and ``-v`` work as in verdi."""

import click
from aiida.cmdline.groups import VerdiCommandGroup
from aiida.cmdline.params import options, types


@click.group("aiida-chimes", cls=VerdiCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@options.PROFILE(type=types.ProfileParamType(load_profile=True), expose_value=False)
def cmd_root():
    """Command line interface of the aiida-chimes plugin."""


# ---------------------------------------------------------------------------------------------------------
# `aiida-chimes setup`: the localhost computer and the codes of our console scripts
# ---------------------------------------------------------------------------------------------------------
from .setup import cmd_setup  # noqa: E402

cmd_root.add_command(cmd_setup)


# ---------------------------------------------------------------------------------------------------------
# data commands
# ---------------------------------------------------------------------------------------------------------
from .potential import cmd_potential  # noqa: E402
from .training_set import cmd_training_set  # noqa: E402

cmd_root.add_command(cmd_potential)
cmd_root.add_command(cmd_training_set)

__all__ = ("cmd_root",)
