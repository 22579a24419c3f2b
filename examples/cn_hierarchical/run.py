"""Hierarchical active-learning fit of a C/N ChIMES potential with GFN1-xTB as the reference (``make demo``).

Full mode from scratch: row 1 fits the single-element tiles C and N, row 2 the CN cross tile on the residuals
(reference minus the C and N tiles); the three tiles are merged into one parameter file.  Every tile is a
``chimes.active_learning`` run: ALC-0 fits the initial frames of its elements, then each cycle runs ChIMES MD at
its state point, selects frames, labels them with xTB, subtracts the lower tiles and refits.  Before the campaign
the script labels (``chimes.reference``, xTB) two sets of its own: the initial training set (rattled copies of
random C12, N12 and C8N8 cells) and a held-out test set (other random C8N8 cells); the campaign reports the
merged potential's errors on the latter (``test_errors`` output).

At the end it prints the merged potential's pk, its tile tree (as ``aiida-chimes potential show PK``), the
per-tile summary, the held-out force and energy RMSE and the elapsed time; it writes a parity plot of the
held-out set and exports the merged parameter file.

Run it in a profile where ``aiida-chimes setup`` has created the localhost codes::

    aiida-chimes setup                                   # once per profile
    verdi run examples/cn_hierarchical/run.py            # fast protocol, in this interpreter (no daemon)
    verdi run examples/cn_hierarchical/run.py --protocol moderate --out /tmp/cn
    verdi run examples/cn_hierarchical/run.py --daemon   # submit to the daemon (verdi daemon start) and return
    verdi run examples/cn_hierarchical/run.py --show PK  # print the results of a finished campaign PK

Arguments after the script path are passed to the script (``verdi run`` hands them over untouched), except the
options of ``verdi run`` itself (``-h``, ``-v``, ``-e``, ``-i``, ``-l``, ``--auto-group``), which ``verdi run``
takes; put ``--`` first to pass those too: ``verdi run examples/cn_hierarchical/run.py -- --help``.
``python examples/cn_hierarchical/run.py ...`` works as well (it loads the default profile).

The fast protocol (the default) takes 3-4 minutes on 2 cores: cells of 12-16 atoms, 200 MD steps of 0.5 fs
per state point and cycle, 2 active-learning cycles per tile, orders 8 (2-body) and 4 (3-body), 4 A cutoffs.
Expect a held-out force RMSE near 1.9 eV/A (the xTB forces of these random cells have an RMS of 3.5 eV/A):
a demonstration of the machinery, not a production potential.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# numba's OpenMP threads otherwise spin at every barrier (costly on a small, shared machine)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DESCRIPTION = "Hierarchical C/N ChIMES fit (tiles C, N, then CN) with GFN1-xTB as the reference."
# `verdi run` sets __file__ to the bare file name (and __doc__ to None); sys.argv[0] is the path it was given
HERE = Path(sys.argv[0]).resolve().parent

#: Global fit settings of both elements; every tile's settings are derived from them (hierarchy.settings_for_tile).
SETTINGS = {
    "types": ["C", "N"],
    "pairs": {
        "C-C": {"s_minim": 1.0, "s_maxim": 4.0, "morse_lambda": 1.4},
        "N-N": {"s_minim": 0.9, "s_maxim": 4.0, "morse_lambda": 1.1},
        "C-N": {"s_minim": 0.95, "s_maxim": 4.0, "morse_lambda": 1.3},
    },
    "orders": [8, 4, 0],
    "fit_energy": True,
    "fit_stress": "all",
    "special": {"3B S_MAXIM": 4.0},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}
#: One state point per tile: random cells of the composition at the density (g/cm^3); MD at the temperature (K).
STATE_POINTS = {
    "C": {"temperature": 1500.0, "composition": {"C": 12}, "density": 2.0, "min_distance": 1.2},
    "N": {"temperature": 1500.0, "composition": {"N": 12}, "density": 1.6, "min_distance": 1.2},
    "CN": {"temperature": 1500.0, "composition": {"C": 8, "N": 8}, "density": 1.9, "min_distance": 1.2},
}
XTB = {"method": "GFN1-xTB", "electronic_temperature": 1000.0}
#: ALC-0 frames (al_driver's ALC-0 training set): rattled and strained copies of 16 random cells per state point
#: (each tile takes the frames of its elements), with contacts down to 1.05 A so that the short distances MD
#: visits are covered from the start.
INITIAL = {"seeds": range(1, 17), "copies": 3, "rattle": 0.05, "strain": 0.02, "min_distance": 1.05}
#: Held-out set: rattled and strained copies of 8 random C8N8 cells at the CN state point (other seeds).
TEST_SET = {"seeds": range(101, 109), "copies": 2, "rattle": 0.05, "strain": 0.02}


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="verdi run examples/cn_hierarchical/run.py", description=DESCRIPTION)
    ap.add_argument(
        "--protocol",
        choices=["fast", "moderate"],
        default="fast",
        help="settings of every tile's active learning (default fast: a few minutes on 2 cores)",
    )
    ap.add_argument(
        "--daemon",
        action="store_true",
        help="submit the campaign to the daemon and return (the two frame sets are labelled here first)",
    )
    ap.add_argument(
        "--show",
        type=int,
        metavar="PK",
        help="print the results of an earlier campaign (a chimes.hierarchical pk) instead of running",
    )
    ap.add_argument(
        "--reuse-tiles",
        action="store_true",
        help="take registered tiles of the same signature (an earlier run) instead of fitting them",
    )
    ap.add_argument(
        "--restart-from",
        type=int,
        metavar="PK",
        help="continue an earlier campaign: finished tiles are reused, an unfinished one resumes",
    )
    ap.add_argument(
        "--max-cycles",
        type=int,
        default=None,
        help="active-learning cycles per tile after ALC-0 (default: the protocol's)",
    )
    ap.add_argument("--computer", default="localhost", help="computer of the aiida-chimes codes (default localhost)")
    ap.add_argument(
        "--out", type=Path, default=HERE, help="folder for parity.png and CN.params.txt (default: this script's folder)"
    )
    return ap.parse_args(argv)


def ensure_profile():
    """The loaded profile (``verdi run`` loads one; ``python run.py`` loads the default)."""
    from aiida import load_profile
    from aiida.manage import get_manager

    return get_manager().get_profile() or load_profile()


def load_codes(computer: str) -> dict:
    """The four codes of ``aiida-chimes setup``; exit with a hint when they are missing."""
    from aiida.common.exceptions import NotExistent

    from aiida_chimes.tools.localhost import load_chimes_code

    scripts = {"design_matrix": "chimes-lsq", "regression": "chimes-solve", "md": "chimes-md", "label": "chimes-label"}
    try:
        return {key: load_chimes_code(script, computer) for key, script in scripts.items()}
    except NotExistent as exc:
        sys.exit(
            f"error: {exc}\n       (`aiida-chimes setup` creates the computer `localhost` and the codes "
            f"chimes-lsq/-solve/-md/-label; with another computer: aiida-chimes setup --computer {computer})"
        )


def random_frames(
    points: list[dict], seeds, copies: int, rattle: float, strain: float, min_distance: float | None = None
):
    """Unlabelled TrainingSetData: ``copies`` rattled, strained copies of a random cell per state point and seed
    (no two atoms closer than ``min_distance``, default the state point's)."""
    from aiida_chimes.chimes.frames import FrameSet
    from aiida_chimes.chimes.structures import random_structure, rattled_frames
    from aiida_chimes.data.training_set import TrainingSetData

    sets = []
    for point in points:
        closest = point["min_distance"] if min_distance is None else min_distance
        for seed in seeds:
            cell = random_structure(point["composition"], density=point["density"], seed=seed, min_distance=closest)
            sets.append(rattled_frames(cell, copies, rattle=rattle, strain=strain, seed=seed, min_distance=closest))
    return TrainingSetData(FrameSet.concatenate(sets))


def label(structures, code, what: str):
    """Frames labelled with xTB by chimes.reference (run here, blocking)."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_chimes.workflows.reference import ReferenceWorkChain

    builder = ReferenceWorkChain.get_builder()
    builder.structures = structures
    builder.method = orm.Str("xtb")
    builder.xtb.code = code
    builder.xtb.parameters = orm.Dict(XTB)
    builder.metadata.label = what
    results, node = run_get_node(builder)
    if not node.is_finished_ok:
        sys.exit(
            f"error: labelling the {what} failed: ReferenceWorkChain<{node.pk}> exit status "
            f"{node.exit_status}: {node.exit_message}\n       see: verdi process report {node.pk}"
        )
    failed = results["failed_frames"].get_list()
    labelled = results["training_set"]
    print(
        f"{what}: {labelled.nframes} frames ({labelled.natoms} atoms) labelled with GFN1-xTB "
        f"(ReferenceWorkChain<{node.pk}>, TrainingSetData<{labelled.pk}>)"
        + (f"; {len(failed)} frame(s) failed and were left out" if failed else "")
    )
    return labelled


def build_campaign(args, codes, training_set, test_set):
    """The HierarchicalFitWorkChain builder of the protocol, with the demo's settings and state points."""
    from aiida import orm

    from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain

    builder = HierarchicalFitWorkChain.get_builder_from_protocol(
        codes,
        SETTINGS,
        STATE_POINTS,
        protocol=args.protocol,
        training_set=training_set,
        test_set=test_set,
        xtb_parameters=XTB,
    )
    builder.project = orm.Str("cn_hierarchical example")
    builder.reuse_tiles = orm.Bool(args.reuse_tiles)
    if args.max_cycles is not None:
        builder.active_learning.max_cycles = orm.Int(args.max_cycles)
    if args.restart_from is not None:
        builder.restart_from = orm.load_node(args.restart_from)
    builder.metadata.label = f"C/N hierarchical example ({args.protocol})"
    return builder


def show_results(node, out: Path, elapsed: float | None = None) -> int:
    """Print the merged potential, its tile tree and the held-out errors; write the parity plot and the file."""
    import numpy as np

    from aiida_chimes.chimes.errors import parity_plot, predict
    from aiida_chimes.cli.potential_show import format_text, potential_tree

    if not node.is_finished_ok:
        state = node.process_state.value if node.process_state else "unknown"
        print(
            f"campaign {node.process_label}<{node.pk}> did not finish ok: state {state}, exit status "
            f"{node.exit_status}: {node.exit_message}",
            file=sys.stderr,
        )
        print(f"see: verdi process report {node.pk}   (and verdi process status {node.pk})", file=sys.stderr)
        return 1
    merged = node.outputs.potential
    print(
        f"\nmerged potential: ChimesPotentialData<{merged.pk}> (campaign {node.process_label}<{node.pk}>), "
        f"elements {merged.elements}, tiles {sorted(''.join(t) for t in merged.tiles)}, "
        f"{merged.n_nonzero} non-zero coefficients"
    )
    print(f"\ntile tree (aiida-chimes potential show {merged.pk}):")
    print(format_text(potential_tree(merged)))
    print("\ntiles:")
    for name, entry in sorted(node.outputs.summary.get_dict()["tiles"].items(), key=lambda x: (len(x[0]), x[0])):
        line = f"  {name:<3} {entry['origin']:<12} ChimesPotentialData<{entry['potential']}>"
        if "cycles" in entry:
            errors = entry.get("errors") or {}
            rmse = errors.get("force_rmse")
            line += (
                f"  ActiveLearningWorkChain<{entry['active_learning']}>: {entry['cycles']} cycle(s), "
                f"{entry['frames']} frames fitted, force RMSE on the last new frames after the refit "
                + (f"{rmse:.3f} eV/A" if rmse is not None else "-")
            )
        print(line)
    if "test_errors" in node.outputs:
        e = node.outputs.test_errors.get_dict()
        energy = e.get("energy_rmse_per_atom")
        stress = e.get("stress_rmse_gpa")
        frames = node.inputs.test_set.get_frameset()
        scale = float(np.sqrt(np.nanmean(frames.forces**2)))
        print(f"\nheld-out set ({e['nframes']} frames, {e['natoms']} atoms; RMS of the xTB forces {scale:.2f} eV/A):")
        print(f"  force RMSE   {e['force_rmse']:.4f} eV/A   (MAE {e['force_mae']:.4f}, max {e['force_max']:.3f})")
        print("  energy RMSE  " + (f"{energy * 1000:.2f} meV/atom" if energy is not None else "-"))
        print("  stress RMSE  " + (f"{stress:.3f} GPa" if stress is not None else "-"))
        predicted = predict(frames, merged.get_params())
        reference = {"energy": frames.energy, "forces": frames.forces, "natoms": frames.natoms}
        out.mkdir(parents=True, exist_ok=True)
        png = parity_plot(
            reference,
            predicted,
            out / "parity.png",
            title=f"C/N hierarchical ChIMES vs GFN1-xTB, held-out set (potential {merged.pk})",
        )
        print(f"parity plot:      {png}")
    path = merged.export(out / "CN.params.txt", overwrite=True)
    print(f"merged parameters: {path}")
    if elapsed is None:
        elapsed = (node.mtime - node.ctime).total_seconds()
    print(f"elapsed:          {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    print(
        f"\nmore: verdi process report {node.pk} | verdi process status {node.pk} | "
        f"aiida-chimes potential show {merged.pk}"
    )
    return 0


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    profile = ensure_profile()
    from aiida import orm
    from aiida.engine import run_get_node, submit

    from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain

    if args.show is not None:
        node = orm.load_node(args.show)
        if node.process_class is not HierarchicalFitWorkChain:
            sys.exit(f"error: {args.show} is a {type(node).__name__}, not a chimes.hierarchical campaign")
        if not node.is_terminated:
            print(
                f"campaign {node.process_label}<{node.pk}> is still {node.process_state.value}; try again later "
                f"(verdi process status {node.pk})"
            )
            return 1
        return show_results(node, args.out)

    if args.daemon:
        from aiida.engine.daemon.client import get_daemon_client

        if profile.process_control_backend is None:
            sys.exit(
                f"error: profile {profile.name!r} has no broker, so nothing can be submitted; run without "
                "--daemon, or use a profile with a broker (verdi presto gives one with ZeroMQ)"
            )
        if not get_daemon_client().is_daemon_running:
            sys.exit(
                f"error: the daemon of profile {profile.name!r} is not running; start it with "
                f"`verdi -p {profile.name} daemon start` (with this environment's bin folder on PATH) and try again"
            )
    codes = load_codes(args.computer)
    start = time.perf_counter()
    print(
        f"profile {profile.name}; codes on {args.computer}: " + ", ".join(f"{c.label}<{c.pk}>" for c in codes.values())
    )
    points = list(STATE_POINTS.values())
    training_set = label(random_frames(points, **INITIAL), codes["label"], "initial training set")
    test_set = label(random_frames([STATE_POINTS["CN"]], **TEST_SET), codes["label"], "held-out set")
    builder = build_campaign(args, codes, training_set, test_set)
    if args.daemon:
        node = submit(builder)
        print(f"submitted {node.process_label}<{node.pk}> ({args.protocol} protocol) to the daemon")
        print(f"follow it:   verdi process status {node.pk}   |   verdi process report {node.pk}")
        print(f"when done:   verdi run {sys.argv[0]} --show {node.pk}")
        return 0
    print(
        f"running the {args.protocol} campaign in this interpreter (tiles C, N, then CN; progress: "
        "verdi process list, or verdi process report PK in another shell)"
    )
    _, node = run_get_node(builder)
    return show_results(node, args.out, elapsed=time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
