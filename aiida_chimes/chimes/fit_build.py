"""Build the compact fit system of a fit setup, frame by frame, on one or many MPI ranks.

Each rank takes a contiguous block of frames (as chimes_lsq does), builds their design rows, weights them,
and folds them into its :class:`~aiida_chimes.chimes.fit_system.FitSystem`; the ranks' systems are reduced
onto rank 0.  Optionally (interop mode) the unweighted rows are also written as chimes_lsq writes them:
``A`` (``.npy`` or text), ``b.txt``, ``b-labeled.txt``, ``natoms.txt``, ``dim.txt``, ``params.header`` and
``ff_groups.map``.  Memory stays O(M^2 + one frame) in compact mode.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .design import CONSTRAINT, DesignBuilder
from .fit_basis import build_basis
from .fit_system import FitSystem
from .weights import row_weights


@dataclass
class BuildReport:
    """What a build did: frame and row counts, time per frame (this rank's frames), files written."""

    nframes: int = 0
    nrows: int = 0
    ncols: int = 0
    frame_times: list[float] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    wall: float = 0.0


def frame_range(nframes: int, rank: int, size: int) -> range:
    """Contiguous block of frames of one rank (the first ``nframes % size`` ranks take one more)."""
    base, extra = divmod(nframes, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def build_fit_system(setup, weights=None, comm=None, interop_dir: str | None = None, text: bool = False,
                     log=None) -> tuple[FitSystem | None, BuildReport]:
    """Build (and reduce onto rank 0) the compact system of ``setup``; returns (system or None, report).

    ``weights``: per-class weight spec for :func:`~aiida_chimes.chimes.weights.row_weights` (None = all 1,
    which is what chimes_lsq itself uses: its outputs are unweighted).  ``interop_dir``: also write the
    chimes_lsq files there.  ``log``: a writable stream for per-frame progress lines.
    """
    t0 = time.perf_counter()
    if getattr(setup, "skip_frames", 1) != 1:
        raise ValueError(f"{setup.source}: SKPFRMS {setup.skip_frames} is not supported (frames are split over MPI "
                         "ranks in contiguous blocks); remove the SKPFRMS keyword")
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    basis = build_basis(setup)
    builder = DesignBuilder(basis, setup.fit_energy)
    system = FitSystem(builder.ncols)
    mine = frame_range(setup.nframes, rank, size)
    report = BuildReport(ncols=builder.ncols)
    raw = None
    b_parts, labels, natoms = [], [], []
    if interop_dir is not None:
        os.makedirs(interop_dir, exist_ok=True)
        raw = open(os.path.join(interop_dir, f"A.{rank:04d}.bin"), "wb")  # noqa: SIM115 - closed below
    try:
        for index, source, frame in setup.iter_frames():
            if index < mine.start:
                continue
            if index >= mine.stop:
                break
            tf = time.perf_counter()
            try:
                rows = builder.frame_rows(frame, setup.stress_mode(index), setup.fits_energy(index),
                                          flags=source.flags)
            except ValueError as exc:  # name the training file and frame (1-based over the whole training set)
                raise ValueError(f"{source.path}: training frame {index + 1}: {exc}") from exc
            w = None
            if weights is not None:
                w = row_weights(rows.classes, rows.b, np.full(len(rows.b), rows.natoms), weights,
                                gas=np.array([lab.startswith("G_") for lab in rows.labels]))
            system.add_rows(rows.A, rows.b, rows.classes, w, natoms=rows.natoms)
            if raw is not None:
                raw.write(np.ascontiguousarray(rows.A, dtype=np.float64).tobytes())
                b_parts.append(rows.b)
                labels.extend(rows.labels)
                natoms.extend([rows.natoms] * len(rows.b))
            report.nframes += 1
            report.nrows += len(rows.b)
            dt = time.perf_counter() - tf
            report.frame_times.append(dt)
            if log is not None:
                print(f"rank {rank}: finished frame {index} ({rows.natoms} atoms, {len(rows.b)} rows) in {dt:.3f} s",
                      file=log, flush=True)
        if rank == size - 1:  # chimes_lsq: the last rank appends the charge-constraint rows after its frames
            Ac, bc = builder.constraint_rows(setup.charge_constraints if setup.fit_coulomb else [])
            if len(bc):
                system.add_rows(Ac, bc, CONSTRAINT)
                report.nrows += len(bc)
                if raw is not None:
                    raw.write(np.ascontiguousarray(Ac, dtype=np.float64).tobytes())
                    b_parts.append(bc)
    finally:
        if raw is not None:
            raw.close()
    if comm is not None and size > 1:
        total = system.reduce(comm, root=0)
    else:
        total = system
    if interop_dir is not None:
        _write_interop(setup, basis, builder.ncols, interop_dir, text, comm, rank, size, b_parts, labels, natoms,
                       report)
    report.wall = time.perf_counter() - t0
    if total is not None:
        total.metadata = dict(getattr(total, "metadata", {}) or {})
        total.metadata.update({"ncols": builder.ncols, "nframes": setup.nframes, "ranks": size})
    return (total if rank == 0 else None), report


def _write_interop(setup, basis, ncols, folder, text, comm, rank, size, b_parts, labels, natoms, report) -> None:
    from .io.lsq_files import (
        format_ff_groups_map,
        format_params_header,
        write_A,
        write_b_labeled,
        write_b_txt,
        write_dim_txt,
        write_natoms_txt,
    )

    b = np.concatenate(b_parts) if b_parts else np.zeros(0)
    if comm is not None and size > 1:
        gathered = comm.gather((b, labels, natoms), root=0)
        if rank != 0:
            return
        b = np.concatenate([g[0] for g in gathered])
        labels = [x for g in gathered for x in g[1]]
        natoms = [x for g in gathered for x in g[2]]
    nrows = len(b)
    parts = [os.path.join(folder, f"A.{r:04d}.bin") for r in range(size)]
    A = np.empty((nrows, ncols))
    pos = 0
    for path in parts:
        chunk = np.fromfile(path, dtype=np.float64).reshape(-1, ncols)
        A[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
        os.remove(path)
    a_path = os.path.join(folder, "A.txt" if text else "A.npy")
    write_A(a_path, A, text=text)
    write_b_txt(os.path.join(folder, "b.txt"), b)
    write_b_labeled(os.path.join(folder, "b-labeled.txt"), labels, b[: len(labels)])  # constraints: no label
    write_natoms_txt(os.path.join(folder, "natoms.txt"), natoms)
    write_dim_txt(os.path.join(folder, "dim.txt"), ncols, nrows)
    with open(os.path.join(folder, "params.header"), "w") as fh:
        fh.write(format_params_header(basis))
    with open(os.path.join(folder, "ff_groups.map"), "w") as fh:
        fh.write(format_ff_groups_map(basis))
    report.files += [a_path] + [os.path.join(folder, f) for f in
                                ("b.txt", "b-labeled.txt", "natoms.txt", "dim.txt", "params.header", "ff_groups.map")]


def progress_stream(verbose: bool):
    return sys.stderr if verbose else None


def attach_metadata(system: FitSystem, setup, weights=None, nframes: int | None = None) -> FitSystem:
    """Record what ``chimes-solve`` needs to write a parameter file (and what the system was built from)."""
    from .io.lsq_files import format_ff_groups_map, format_params_header

    basis = build_basis(setup)
    system.metadata.update({
        "nframes": setup.nframes if nframes is None else nframes,
        "fm_setup": setup.to_string(),
        "params_header": format_params_header(basis),
        "ff_groups_map": format_ff_groups_map(basis),
        "fit_energy": bool(setup.fit_energy),
        "weights": weights,
    })
    return system

