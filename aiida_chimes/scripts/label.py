"""``chimes-label``: GFN-xTB reference labels (tblite) for a set of frames, as run by the labelling CalcJob.

Run ``chimes-label label.json`` in a folder holding ``label.json`` (settings) and ``structures.npz`` (a
``frames.npz``).  Writes ``labelled.npz`` (the converged frames with energy, forces, stress and electronic
temperature) and ``label_report.json`` next to ``label.json``, also part-way.  Exit status: 0 when at least one
frame converged, 4 when none did, 2 for bad input (one line on stderr naming the file and key).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

STRUCTURES, LABELLED, REPORT = "structures.npz", "labelled.npz", "label_report.json"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="chimes-label", description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="?", default="label.json", help="labelling settings file (default %(default)s)")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    _early_threads(args.settings)
    from aiida_chimes.chimes.frames import FrameSet, FrameSetError
    from aiida_chimes.chimes.reference_xtb import EXIT_INPUT, EXIT_NONE_CONVERGED, EXIT_OK, LabelInputError

    folder = os.path.dirname(os.path.abspath(args.settings))
    try:
        settings = _read_settings(args.settings, folder)
        path = os.path.join(folder, STRUCTURES)
        if not os.path.isfile(path):
            raise LabelInputError(f"{STRUCTURES}: file not found in {folder} (the frames to label, a frames.npz)")
        frames = FrameSet.load(path)
        if len(frames) == 0:
            raise LabelInputError(f"{STRUCTURES}: holds no frames; give at least one")
    except (LabelInputError, FrameSetError, OSError) as exc:
        print(f"chimes-label: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_INPUT
    from aiida_chimes.chimes.reference_xtb import label_frames

    def write(labelled: FrameSet, report: dict) -> None:
        labelled.save(os.path.join(folder, LABELLED))
        tmp = os.path.join(folder, REPORT + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, os.path.join(folder, REPORT))

    labelled, report = label_frames(frames, settings, checkpoint=write)
    write(labelled, report)
    for entry in report["failed"]:
        print(f"chimes-label: frame {entry['index']} failed: {entry['message']}", file=sys.stderr)
    print(f"chimes-label: {report['n_converged']}/{report['n_input']} frames labelled with {report['method']} "
          f"({report['seconds_per_frame']:.3g} s/frame)")
    return EXIT_OK if report["n_converged"] else EXIT_NONE_CONVERGED


def _early_threads(path: str) -> None:
    """Set OMP_NUM_THREADS from ``num_threads`` before any OpenMP runtime loads (they read it only then)."""
    try:
        with open(path) as handle:
            value = json.load(handle).get("num_threads")
    except (OSError, ValueError, AttributeError):
        return  # reported properly by _read_settings
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        os.environ["OMP_NUM_THREADS"] = str(value)


def _read_settings(path: str, folder: str):
    from aiida_chimes.chimes.reference_xtb import LabelInputError, LabelSettings

    name = os.path.basename(path)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise LabelInputError(f"{name}: file not found in {folder}") from None
    except json.JSONDecodeError as exc:
        raise LabelInputError(f"{name}: not valid JSON ({exc})") from None
    return LabelSettings.from_dict(data, source=name)


if __name__ == "__main__":
    sys.exit(main())
