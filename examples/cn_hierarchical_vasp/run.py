#!/usr/bin/env python
"""The official hierarchical C/N example (al_driver ``examples/hierarch_fit``) with VASP as the reference.

Full mode on top of the two official single-element tiles (``HIERARCH_PARAMS/C.params.txt.reduced`` and
``N.params.txt.reduced``, see ``HIERARCH_PARAMS/README.md``): the tiles are given, so the campaign fits only the CN
cross tile (2-body C-N, 3-body CCN/CNN, 4-body CCCN/CCNN/CNNN) by active learning at the example's state point
(C172 N44, 3.5 g/cm^3, 6000 K), labels every selected frame with VASP through aiida-vasp and merges the three
tiles into one parameter file.

The global settings follow the example's ``fm_setup.in``: PAIRTYP CHEBYSHEV 25 10 4, the three pair lines
(S_MINIM, S_MAXIM, MORSE_LAMBDA), TERSOFF 0.75, SPECIFIC many-body cutoffs.  Its EXCLUDE lists and HIERARC are
not given here: ``chimes.hierarchical`` writes them for each tile (``hierarchy.settings_for_tile``) and checks every
rule against the given tiles before anything runs (pair cutoffs and lambdas, cutoff function, orders >= the
tiles', SPECIFIC cutoffs of the tiles' clusters).

VASP settings are those of the example's ``QM_BASEFILES/6000.INCAR`` (single points: PBE, ``LVDW``, 1000 eV,
Fermi smearing SIGMA 0.517 eV, i.e. 6000 K, stress with ISIF 2) and ``KPOINTS`` (Gamma point only).

Needed on your side:

* a VASP code for the ``vasp.vasp`` plugin (``--vasp-code vasp@cluster``; the example used VASP 5.4.4);
* a POTCAR family with PBE PAW potentials for C and N (``--potential-family``; the mapping used is
  {'C': 'C', 'N': 'N'}, i.e. the standard ``C`` and ``N`` POTCARs of e.g. potpaw_PBE.54), uploaded with
  ``aiida-vasp potcar uploadfamily --path <potpaw_PBE folder or archive> --name PBE.54 --description ...``.
  The al_driver example does not ship its POTCARs (they are licensed), so which set it used is not recorded;
* ``aiida-chimes setup`` in the profile (chimes-md, chimes-lsq, chimes-solve on ``--computer``), and a daemon
  (``--daemon``) for a real campaign: VASP jobs on a cluster take hours.

Check the set-up without launching anything::

    verdi run examples/cn_hierarchical_vasp/run.py --dry-run
    verdi run examples/cn_hierarchical_vasp/run.py --dry-run --vasp-code vasp@cluster --potential-family PBE.54

The dry run loads the two tiles (get_or_create: no duplicate nodes), builds the builder, prints the plan (which
tiles are given and which are fitted, the CN tile's derived settings and the consistency rules checked) and
validates every input port of ``chimes.hierarchical`` (the VASP code and POTCAR family too, when given; without
them a placeholder code stands in and the family check is reported as the only thing missing).  Then::

    verdi run examples/cn_hierarchical_vasp/run.py --daemon --vasp-code vasp@cluster --potential-family PBE.54 \\
        --alc0 <al_driver>/examples/hierarch_fit/ALL_BASE_FILES/ALC-0_BASEFILES/20.3percN_3.5gcc.xyzf

``--alc0`` gives the example's DFT-labelled ALC-0 frames (with the ``.temps`` file next to it); without it, ALC-0
labels rattled copies of a random C172N44 cell with VASP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = "Hierarchical C/N fit on the official C and N tiles with VASP labels (only the CN tile is fitted)."
# `verdi run` sets __file__ to the bare file name; sys.argv[0] is the path it was given
HERE = Path(sys.argv[0]).resolve().parent
TILES = {"C": HERE / "HIERARCH_PARAMS" / "C.params.txt.reduced", "N": HERE / "HIERARCH_PARAMS" / "N.params.txt.reduced"}

#: Global settings of the example (fm_setup.in without EXCLUDE/HIERARC, which chimes.hierarchical derives per
#: tile).  The SPECIFIC cutoffs of the pure C and N clusters equal the tiles' (checked); the cross clusters' are
#: those of fm_setup.in.
SETTINGS = {
    "types": ["C", "N"],
    "pairs": {
        "C-C": {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4},
        "N-N": {"s_minim": 0.86, "s_maxim": 8.0, "morse_lambda": 1.09},
        "C-N": {"s_minim": 0.90, "s_maxim": 5.0, "morse_lambda": 1.34},
    },
    "orders": [25, 10, 4],
    "fit_energy": True,
    "fit_stress": "all",
    "special": {
        "3B S_MAXIM": [
            ["CCCCCC", ["CC", "CC", "CC"], [5.0, 5.0, 5.0]],
            ["CCCNCN", ["CC", "CN", "CN"], [5.0, 5.0, 5.0]],
            ["CNCNNN", ["CN", "CN", "NN"], [5.0, 5.0, 5.0]],
            ["NNNNNN", ["NN", "NN", "NN"], [5.0, 5.0, 5.0]],
        ],
        "4B S_MAXIM": [
            ["CCCCCCCCCCCC", ["CC", "CC", "CC", "CC", "CC", "CC"], [4.5] * 6],
            ["CCCCCNCCCNCN", ["CC", "CC", "CN", "CC", "CN", "CN"], [4.5] * 6],
            ["CCCNCNCNCNNN", ["CC", "CN", "CN", "CN", "CN", "NN"], [4.5] * 6],
            ["CNCNCNNNNNNN", ["CN", "CN", "CN", "NN", "NN", "NN"], [4.5] * 6],
            ["NNNNNNNNNNNN", ["NN", "NN", "NN", "NN", "NN", "NN"], [4.0] * 6],
        ],
    },
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}
#: The example's state point: 216 atoms, 20.3 % N, 3.5 g/cm^3, 6000 K (ALC-0 file 20.3percN_3.5gcc, run_md.in).
STATE_POINTS = {
    "CN_6000K": {"temperature": 6000.0, "composition": {"C": 172, "N": 44}, "density": 3.5, "min_distance": 1.0},
}
#: Penalty lines of both tiles (PAIR CHEBYSHEV PENALTY DIST / SCALING): the merged file keeps them.
PENALTY = [0.02, 1.0e6]
#: 6000.INCAR as single points (lower-case keys for aiida-vasp).  Left out: NPAR 6 (machine specific: set it for
#: your nodes), TEBEG/TEEND/SMASS/POTIM (MD only), NWRITE/LPETIM (output verbosity).  IALGO = 48 is written as
#: ALGO = VeryFast (the same RMM-DIIS; VASP 6 no longer accepts IALGO 48).  The file has ICHARG twice (2, then 0):
#: every frame starts from scratch, so ICHARG = 2.
INCAR = {
    "encut": 1000,
    "gga": "PE",
    "lvdw": True,
    "ediff": 1.0e-6,
    "ediffg": -1.0e-2,
    "ispin": 1,
    "isif": 2,
    "nsw": 0,
    "ibrion": -1,
    "addgrid": False,
    "lcorr": True,
    "ismear": -1,
    "sigma": 0.517,
    "nelmin": 4,
    "nelm": 200,
    "algo": "VeryFast",
    "lreal": "Auto",
    "isym": 0,
    "istart": 0,
    "icharg": 2,
    "amix": 0.1,
    "bmix": 0.01,
    "lwave": False,
    "lcharg": False,
}


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="verdi run examples/cn_hierarchical_vasp/run.py", description=DESCRIPTION)
    ap.add_argument(
        "--dry-run", action="store_true", help="build and validate the inputs, print the plan, launch nothing"
    )
    ap.add_argument("--vasp-code", help="label of the VASP code (vasp.vasp plugin), e.g. vasp@cluster")
    ap.add_argument("--potential-family", help="POTCAR family holding the PBE PAW potentials C and N, e.g. PBE.54")
    ap.add_argument("--vasp-machines", type=int, default=1, help="nodes per VASP job (default 1)")
    ap.add_argument("--vasp-mpiprocs", type=int, default=48, help="MPI processes per node (default 48, as the example)")
    ap.add_argument("--vasp-walltime", type=int, default=3600, help="seconds per VASP job (default 3600)")
    ap.add_argument("--vasp-queue", help="scheduler queue/partition of the VASP jobs")
    ap.add_argument("--vasp-account", help="scheduler account of the VASP jobs")
    ap.add_argument("--computer", default="localhost", help="computer of the aiida-chimes codes (default localhost)")
    ap.add_argument(
        "--protocol",
        choices=["fast", "moderate", "precise"],
        default="moderate",
        help="active-learning settings (default moderate: 2000 MD steps, up to 5 cycles)",
    )
    ap.add_argument("--alc0", type=Path, help="DFT-labelled ALC-0 frames (.xyzf; a .temps file next to it is used)")
    ap.add_argument("--test-set", type=Path, help="held-out DFT-labelled frames (.xyzf) for the test_errors output")
    ap.add_argument("--daemon", action="store_true", help="submit to the daemon (recommended) instead of running here")
    return ap.parse_args(argv)


def load_tiles() -> dict:
    """The two official tiles as ChimesPotentialData (an existing node with the same content is reused)."""
    from aiida_chimes.data.potential import ChimesPotentialData

    tiles = {}
    for name, path in TILES.items():
        node = ChimesPotentialData.get_or_create(str(path))
        if not node.label:
            node.label = f"official {name} tile (al_driver examples/hierarch_fit)"
        tiles[name] = node
    return tiles


def chimes_codes(computer: str) -> dict:
    """chimes-md/-lsq/-solve (and chimes-label, unused with VASP) of ``aiida-chimes setup``."""
    from aiida.common.exceptions import NotExistent

    from aiida_chimes.tools.localhost import load_chimes_code

    scripts = {"design_matrix": "chimes-lsq", "regression": "chimes-solve", "md": "chimes-md", "label": "chimes-label"}
    try:
        return {key: load_chimes_code(script, computer) for key, script in scripts.items()}
    except NotExistent as exc:
        sys.exit(f"error: {exc}")


def vasp_code(label: str | None, computer):
    """The user's VASP code, or (dry run without one) an unstored placeholder on the chimes computer."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    if label is not None:
        try:
            code = orm.load_code(label)
        except NotExistent:
            sys.exit(
                f"error: no code {label!r}; create it with `verdi code create core.code.installed` "
                "(default plugin vasp.vasp) or list them with `verdi code list`"
            )
        if code.default_calc_job_plugin not in (None, "vasp.vasp"):
            print(f"warning: code {label} is for {code.default_calc_job_plugin}, not vasp.vasp")
        return code, False
    return orm.InstalledCode(
        computer=computer,
        filepath_executable="/placeholder/vasp",
        label="vasp-placeholder",
        default_calc_job_plugin="vasp.vasp",
    ), True


def build(args, tiles, codes, vasp):
    """The HierarchicalFitWorkChain builder (given C and N tiles, CN fitted with VASP labels) and, if aiida-vasp
    refused the POTCAR family, its message (the builder then lacks ``potential_family``)."""
    from aiida import orm
    from aiida.common.exceptions import InputValidationError

    from aiida_chimes.data.training_set import TrainingSetData
    from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain

    training_set = test_set = None
    if args.alc0 is not None:
        temps = args.alc0.with_suffix(".temps")
        training_set = TrainingSetData.from_xyzf(
            str(args.alc0), str(temps) if temps.exists() else None, label=f"ALC-0 {args.alc0.name}"
        )
    if args.test_set is not None:
        temps = args.test_set.with_suffix(".temps")
        test_set = TrainingSetData.from_xyzf(
            str(args.test_set), str(temps) if temps.exists() else None, label=f"held-out {args.test_set.name}"
        )
    builder = HierarchicalFitWorkChain.get_builder_from_protocol(
        codes,
        SETTINGS,
        STATE_POINTS,
        protocol=args.protocol,
        tiles=tiles,
        mode="full",
        training_set=training_set,
        test_set=test_set,
    )
    builder.project = orm.Str("al_driver hierarch_fit C/N (VASP)")
    builder.metadata.label = "C/N hierarchical, official C and N tiles, VASP"
    al = builder.active_learning
    al.penalty = orm.List(PENALTY)
    reference = al.reference
    del reference["xtb"]  # the protocol's xTB namespace; this campaign labels with VASP
    reference.method = orm.Str("vasp")
    options = {
        "resources": {"num_machines": args.vasp_machines, "num_mpiprocs_per_machine": args.vasp_mpiprocs},
        "max_wallclock_seconds": args.vasp_walltime,
        "withmpi": True,
    }
    if args.vasp_queue:
        options["queue_name"] = args.vasp_queue
    if args.vasp_account:
        options["account"] = args.vasp_account
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([1, 1, 1])  # KPOINTS: Gamma 1 1 1
    vasp_inputs = reference.vasp.vasp  # chimes.reference -> chimes.label_vasp -> aiida-vasp's VaspWorkChain
    vasp_inputs.code = vasp
    vasp_inputs.potential_mapping = orm.Dict({"C": "C", "N": "N"})
    vasp_inputs.parameters = orm.Dict({"incar": dict(INCAR)})
    vasp_inputs.kpoints = kpoints
    for key, value in options.items():
        vasp_inputs.calc.metadata.options[key] = value
    family_error = None
    try:  # aiida-vasp checks here that the family exists in this profile
        vasp_inputs.potential_family = orm.Str(args.potential_family or "PBE.54")
    except InputValidationError as exc:
        family_error = str(exc)
    return builder, family_error


def print_plan(tiles: dict) -> None:
    """Given and fitted tiles, the CN tile's derived settings and the consistency rules it passed."""
    from aiida_chimes.chimes import hierarchy
    from aiida_chimes.workflows.hierarchical import plan_fits

    given = {hierarchy.tile_of([name]): node for name, node in tiles.items()}
    print("given tiles:")
    for name, node in tiles.items():
        o = node.orders
        print(
            f"  {name}: ChimesPotentialData<{node.pk}>  {TILES[name].name}, orders {o}, {node.n_nonzero} non-zero "
            f"coefficients, sha256 {node.sha256[:12]}"
        )
    rows = plan_fits(SETTINGS, list(given), "full")
    print("fits, row by row: " + (" | ".join(", ".join(hierarchy.tile_name(t) for t in row) for row in rows) or "none"))
    lower = [node.get_params() for node in tiles.values()]
    for row in rows:
        for unit in row:
            tile_settings = hierarchy.settings_for_tile(SETTINGS, unit, lower)
            print(
                f"tile {hierarchy.tile_name(unit)} fit settings (derived): orders {tile_settings['orders']}, "
                f"hierarchical {tile_settings['hierarchical']}"
            )
            for body, entries in sorted(tile_settings["exclude"].items()):
                print(f"  EXCLUDE {body}B: {', '.join(entries)}")
            for key, entries in sorted(tile_settings["special"].items()):
                print(f"  SPECIAL {key} SPECIFIC: " + ", ".join(f"{e[0]} {e[2]}" for e in entries))
            for line in hierarchy.check_consistency(SETTINGS["types"], tile_settings, lower):
                print(f"  ok: {line}")


def validate(builder, placeholder: bool, family_error: str | None) -> bool:
    """Every input port and validator of chimes.hierarchical, as at launch (nothing is stored or run)."""
    from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain, validate_inputs

    inputs = builder._inputs(prune=True)
    message = validate_inputs(inputs, None)
    if message:
        print(f"chimes.hierarchical consistency checks: FAILED: {message}")
        return False
    print("chimes.hierarchical consistency checks (settings vs the given tiles, plan, state points): ok")
    spec_inputs = HierarchicalFitWorkChain.spec().inputs
    error = spec_inputs.validate(spec_inputs.pre_process(inputs))  # defaults filled in, as a launch does
    missing_family = family_error is not None and error is not None and "potential_family" in str(error)
    if error is None or missing_family:
        print(
            "input validation of chimes.hierarchical (every port and validator, aiida-vasp's included): "
            + ("ok" if error is None else "ok except the POTCAR family")
            + (" (with a placeholder VASP code: pass --vasp-code to check yours)" if placeholder else "")
        )
    else:
        print(f"input validation of chimes.hierarchical: FAILED: {error}")
    if family_error:
        print(f"POTCAR family: {family_error}")
        print("  -> upload one with C and N (aiida-vasp potcar uploadfamily ...) and pass --potential-family")
    return error is None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from aiida import load_profile
    from aiida.manage import get_manager

    get_manager().get_profile() or load_profile()
    from aiida.engine import run_get_node, submit

    if not args.dry_run and (args.vasp_code is None or args.potential_family is None):
        sys.exit("error: give --vasp-code and --potential-family (or --dry-run to check the set-up)")
    codes = chimes_codes(args.computer)
    vasp, placeholder = vasp_code(args.vasp_code, codes["md"].computer)
    tiles = load_tiles()
    print_plan(tiles)
    builder, family_error = build(args, tiles, codes, vasp)
    print(
        f"reference: VASP, code {vasp.label}{' (placeholder)' if placeholder else f'<{vasp.pk}>'}, POTCAR family "
        f"{args.potential_family or 'PBE.54'} {{'C': 'C', 'N': 'N'}}, ENCUT {INCAR['encut']} eV, "
        f"SIGMA {INCAR['sigma']} eV, Gamma point; state point {STATE_POINTS}; protocol {args.protocol}"
    )
    if args.dry_run:
        ok = validate(builder, placeholder, family_error)
        print("dry run: nothing launched")
        return 0 if ok else 1
    if family_error:
        sys.exit(f"error: potential_family: {family_error}")
    if args.daemon:
        node = submit(builder)
        print(f"submitted {node.process_label}<{node.pk}>; follow it with verdi process report {node.pk}")
        return 0
    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        print(
            f"{node.process_label}<{node.pk}> failed ({node.exit_status}): {node.exit_message}; "
            f"verdi process report {node.pk}"
        )
        return 1
    print(
        f"merged potential ChimesPotentialData<{node.outputs.potential.pk}>; "
        f"aiida-chimes potential show {node.outputs.potential.pk}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
