"""``chimes-lsq``: build the fit system of an ``fm_setup.in`` (serial or under ``mpiexec -n K``).

Writes the compact fit system (``fit_system.npz``, what ``chimes-solve`` and the AiiDA CalcJobs use) and, unless
``--compact-only``, the chimes_lsq interop files (``A.npy`` or ``A.txt`` with ``--text``, ``b.txt``,
``b-labeled.txt``, ``natoms.txt``, ``dim.txt``, ``params.header``, ``ff_groups.map``) for comparison with the
official tools.  Frames are split over MPI ranks in contiguous blocks; the result does not depend on the
number of ranks beyond round-off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chimes-lsq", description=__doc__.splitlines()[0])
    ap.add_argument("setup", nargs="?", default="fm_setup.in", help="chimes_lsq input file (default fm_setup.in)")
    ap.add_argument("--output", "-o", default="fit_system.npz", help="compact fit system file (default %(default)s)")
    ap.add_argument("--compact-only", action="store_true", help="do not write the chimes_lsq interop files")
    ap.add_argument("--text", action="store_true", help="write A as text (A.txt) instead of binary A.npy")
    ap.add_argument("--interop-dir", default=".", help="folder for the interop files (default: current folder)")
    ap.add_argument("--weights", default=None,
                    help="JSON file with per-class row weights folded into the compact system, e.g. "
                         '{"force": 1.0, "energy": 0.1, "stress": 250.0} (al_driver styles allowed); default: '
                         "unweighted, as chimes_lsq")
    ap.add_argument("--allow-long-manybody", action="store_true",
                    help="accept many-body SPECIAL S_MAXIM larger than the 2-body cutoff (as chimes_lsq does)")
    ap.add_argument("--add-to", default=None, metavar="PREVIOUS",
                    help="fold the new frames into an earlier fit_system.npz (same basis and weights), so an "
                         "active-learning cycle builds rows only for its new frames")
    ap.add_argument("--quiet", "-q", action="store_true", help="no per-frame progress lines")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))) > 1:
        # one BLAS thread per rank: the ranks already use the cores (must be set before numpy loads BLAS)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")
    from aiida_chimes.chimes.fit_build import build_fit_system
    from aiida_chimes.chimes.fit_setup import FitSetupError, read_fm_setup

    comm = _world()
    rank = comm.Get_rank() if comm is not None else 0
    try:
        setup = read_fm_setup(args.setup, allow_long_manybody=args.allow_long_manybody)
    except (FitSetupError, OSError) as exc:
        if rank == 0:
            print(f"chimes-lsq: error: {exc}", file=sys.stderr)
        return 2
    weights = None
    if args.weights:
        with open(args.weights) as fh:
            weights = json.load(fh)
    previous = None
    if args.add_to and rank == 0:
        try:
            previous = _load_previous(args.add_to, setup, weights)
        except (OSError, ValueError) as exc:
            print(f"chimes-lsq: error: {exc}", file=sys.stderr)
            if comm is not None and comm.Get_size() > 1:
                comm.Abort(2)
            return 2
    log = None if args.quiet else sys.stderr
    try:
        system, report = build_fit_system(setup, weights=weights, comm=comm,
                                          interop_dir=None if args.compact_only else args.interop_dir,
                                          text=args.text, log=log)
    except ValueError as exc:
        print(f"chimes-lsq: error (rank {rank}): {exc}", file=sys.stderr)
        if comm is not None and comm.Get_size() > 1:
            comm.Abort(2)
        return 2
    if rank == 0:
        from aiida_chimes.chimes.fit_build import attach_metadata

        nframes = setup.nframes
        if previous is not None:
            previous.merge(system)
            system = previous
            nframes += int(system.metadata.get("nframes", 0))
        attach_metadata(system, setup, weights, nframes=nframes)
        system.save(args.output)
        added = f" added to {args.add_to} ({nframes} in all)" if previous is not None else ""
        interop = "" if args.compact_only else f" + interop files in {os.path.abspath(args.interop_dir)}"
        print(f"chimes-lsq: {setup.nframes} frames{added}, {system.nrows_total} rows, {report.ncols} columns -> "
              f"{args.output}{interop} ({report.wall:.2f} s)", file=sys.stderr)
    return 0


def _load_previous(path, setup, weights):
    """The earlier system of ``--add-to``, checked to have the same basis (params.header) and row weights."""
    from aiida_chimes.chimes.fit_basis import build_basis
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.io.lsq_files import format_params_header

    previous = FitSystem.load(path)
    meta = previous.metadata
    if meta.get("params_header") != format_params_header(build_basis(setup)):
        raise ValueError(f"{path}: its basis (params.header) differs from the one of {setup.source}; a system can "
                         "only be extended with frames fitted with the same types, pairs, orders and exclusions")
    if meta.get("weights") != weights:
        raise ValueError(f"{path}: built with row weights {meta.get('weights')}, this run uses {weights}; use the "
                         "same --weights to extend it")
    return previous


def _world():
    """MPI.COMM_WORLD when started under mpiexec with more than one rank, else None (no MPI needed)."""
    if not any(k in os.environ for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMIX_RANK")):
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


if __name__ == "__main__":
    sys.exit(main())
