"""``aiida-chimes setup``: create (idempotently) the localhost computer and the codes of our console scripts."""

import click
from aiida.cmdline.utils import decorators, echo


@click.command("setup")
@click.option("--computer", "computer_label", default="localhost", show_default=True,
              help="Label of the computer to use or create (core.local transport, core.direct scheduler).")
@click.option("--workdir", default=None, type=click.Path(file_okay=False),
              help="Scratch folder for calculations when the computer is created (default ~/aiida_chimes_work).")
@click.option("--mpiprocs", default=None, type=int, help="Default MPI processes per machine (default: all cores).")
@decorators.with_dbenv()
def cmd_setup(computer_label, workdir, mpiprocs):
    """Create the computer and the codes chimes-lsq, chimes-solve, chimes-md, chimes-label (safe to re-run)."""
    from aiida_chimes.tools.localhost import ensure_codes, ensure_computer

    computer, created = ensure_computer(computer_label, workdir=workdir, mpiprocs=mpiprocs)
    echo.echo_success(f"{'created' if created else 'using'} computer {computer.label} (workdir "
                      f"{computer.get_workdir()})")
    try:
        statuses = ensure_codes(computer)
    except FileNotFoundError as exc:
        echo.echo_critical(str(exc))
    for s in statuses:
        state = "created" if s.created else "exists"
        echo.echo(f"  {s.label}@{computer.label:<12} pk {s.pk:<6} {state:<8} {s.plugin:<22} {s.executable}"
                  + (f"  ({s.note})" if s.note else ""))
