"""MPI check of :meth:`FitSystem.reduce`, run by ``test_fit_system.py::test_mpi_reduce`` under mpiexec.

Usage: ``mpiexec -n P python mpi_fit_system_check.py OUTDIR``.  Every rank builds the rows of its own frames
(frame i goes to rank i % P) of the deterministic problem of :func:`make_frames`, the systems are reduced
onto rank 0, which saves the result to ``OUTDIR/reduced.npz``.  The test builds the same problem serially.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

NCOLS = 40
NFRAMES = 24


def make_frames(ncols=NCOLS, nframes=NFRAMES, seed=1234):
    """Deterministic training 'frames': (A, b, classes, natoms) with 3n force rows, 3 stress rows, 1 energy row."""
    rng = np.random.default_rng(seed)
    x_true = rng.standard_normal(ncols)
    frames = []
    for _ in range(nframes):
        natoms = int(rng.integers(3, 9))
        nrows = 3 * natoms + 3 + 1
        A = rng.standard_normal((nrows, ncols)) * rng.uniform(0.5, 2.0, ncols)
        b = A @ x_true + 0.1 * rng.standard_normal(nrows)
        classes = np.array([0] * (3 * natoms) + [2, 2, 2] + [1])
        frames.append((A, b, classes, natoms))
    return frames


def build(frames, indices, block_rows=16):
    """FitSystem of the given frames, with al_driver-style weights (energy weight depends on natoms)."""
    from aiida_chimes.chimes.fit_system import FitSystem
    from aiida_chimes.chimes.weights import row_weights

    spec = {"force": 1.0, "energy": [["A", "E"], [[0.1], [-1.0]]], "stress": 25.0}
    system = FitSystem(NCOLS, block_rows=block_rows)
    for i in indices:
        A, b, classes, natoms = frames[i]
        w = row_weights(classes, b, natoms, spec)
        system.add_rows(A, b, classes, w, natoms=natoms)
    return system


def main(outdir):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    frames = make_frames()
    system = build(frames, range(rank, NFRAMES, size))
    system.metadata = {"rank": rank, "size": size}
    reduced = system.reduce(comm, root=0)
    if rank == 0:
        assert reduced is not None
        reduced.save(Path(outdir) / "reduced.npz")
    else:
        assert reduced is None
    comm.Barrier()


if __name__ == "__main__":
    main(sys.argv[1])
