"""``chimes-md``: molecular dynamics with a ChIMES potential, as run by the MD CalcJob.

Run ``chimes-md md.json`` in a folder holding ``md.json`` (settings), ``params.txt`` (ChIMES parameters),
``structure.npz`` (a one-frame ``frames.npz``) and optionally ``velocities.npy`` ((N, 3) Angstrom/fs).  Writes
``trajectory.npz``, ``thermo.npz``, ``final.npz``, ``final_velocities.npy`` and ``md_summary.json`` next to
``md.json``.  Exit status: 0 completed, 2 bad input (one line on stderr naming the file and key), 3 blow-up,
130 interrupted (SIGINT/SIGTERM; the outputs so far are written).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

PARAMS, STRUCTURE, VELOCITIES = "params.txt", "structure.npz", "velocities.npy"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chimes-md", description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="?", default="md.json", help="MD settings file (default %(default)s)")
    return ap


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before numba starts its threads
    from aiida_chimes.chimes.md import EXIT_BLOWUP, EXIT_INPUT, EXIT_OK, MDInputError

    folder = os.path.dirname(os.path.abspath(args.settings))
    try:
        atoms, calc, settings, velocities = _read_inputs(args.settings, folder)
    except (MDInputError, OSError, ValueError) as exc:
        print(f"chimes-md: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    from aiida_chimes.chimes.md import run_md

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_md(atoms, calc, settings, outdir=folder, velocities=velocities)
    except MDInputError as exc:
        print(f"chimes-md: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("chimes-md: interrupted; outputs so far are written", file=sys.stderr)
        return 130
    if summary["status"] == "blowup":
        print(f"chimes-md: blow-up: {summary['reason']}", file=sys.stderr)
        return EXIT_BLOWUP
    print(f"chimes-md: completed {summary['steps_done']} steps, {summary['frames']} frames, "
          f"{len(summary['penalty_frames'])} penalty frames, {summary['seconds_per_step'] or 0:.4g} s/step")
    return EXIT_OK


def _read_inputs(settings_path: str, folder: str):
    """Parse and check ``md.json``, ``params.txt``, ``structure.npz`` and ``velocities.npy``."""
    import numpy as np

    from aiida_chimes.chimes.calculator import ChimesCalculator
    from aiida_chimes.chimes.frames import FrameSet, FrameSetError
    from aiida_chimes.chimes.md import MDInputError, MDSettings
    from aiida_chimes.chimes.params import ParamsFormatError

    name = os.path.basename(settings_path)
    try:
        with open(settings_path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise MDInputError(f"{name}: file not found in {folder}") from None
    except json.JSONDecodeError as exc:
        raise MDInputError(f"{name}: not valid JSON ({exc})") from None
    vel_path = os.path.join(folder, VELOCITIES)
    has_velocities = os.path.isfile(vel_path)
    settings = MDSettings.from_dict(data, source=name, has_velocities=has_velocities)
    struct_path = os.path.join(folder, STRUCTURE)
    if not os.path.isfile(struct_path):
        raise MDInputError(f"{STRUCTURE}: file not found in {folder} (the starting structure, a one-frame frames.npz)")
    try:
        frames = FrameSet.load(struct_path)
    except FrameSetError as exc:
        raise MDInputError(str(exc)) from None
    if len(frames) != 1:
        raise MDInputError(f"{STRUCTURE}: holds {len(frames)} frames; give exactly one (the starting structure)")
    atoms = frames.atoms(0)
    atoms.calc = None
    pbc = atoms.pbc
    if pbc.any() and not pbc.all():
        raise MDInputError(f"{STRUCTURE}: mixed periodicity {pbc.tolist()}; use a fully periodic or open structure")
    velocities = None
    if has_velocities:
        try:
            velocities = np.load(vel_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MDInputError(f"{VELOCITIES}: cannot read ({exc})") from None
        if velocities.shape != (len(atoms), 3) or not np.isfinite(velocities).all():
            raise MDInputError(f"{VELOCITIES}: expected finite ({len(atoms)}, 3) Angstrom/fs, got shape "
                               f"{velocities.shape}")
    params_path = os.path.join(folder, PARAMS)
    if not os.path.isfile(params_path):
        raise MDInputError(f"{PARAMS}: file not found in {folder} (the ChIMES parameter file)")
    try:
        calc = ChimesCalculator(params_path, num_threads=settings.num_threads)
    except ParamsFormatError as exc:
        raise MDInputError(f"{PARAMS}: {exc}") from None
    if calc.params.flag("FITCOUL"):  # fitted charges: the Coulomb part is an Ewald sum (orthorhombic cells only)
        try:
            _ = calc.params.charge_products  # raises when a pair has no charge-product line
        except ValueError as exc:
            raise MDInputError(f"{PARAMS}: {str(exc).split(': ', 1)[-1]}") from None
        from aiida_chimes.chimes.ewald import orthorhombic_lengths

        what = (f"{STRUCTURE}: {PARAMS} has fitted charges (FITCOUL true), whose Ewald Coulomb sum needs a fully "
                "periodic orthorhombic cell")
        if not atoms.pbc.all():
            raise MDInputError(f"{what}; this structure has pbc {atoms.pbc.tolist()}")
        try:
            orthorhombic_lengths(atoms.cell.array)
        except ValueError as exc:
            raise MDInputError(f"{what}: {exc}") from None
    missing = sorted(set(atoms.get_chemical_symbols()) - set(calc.params.symbols))
    if missing:
        raise MDInputError(f"{STRUCTURE}: elements {missing} are not in {PARAMS} (it has {calc.params.symbols}); "
                           "use a potential that covers every element of the structure")
    return atoms, calc, settings, velocities


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
