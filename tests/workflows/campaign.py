"""The tiny C/N hierarchical campaign shared by the workflow, CLI and daemon tests (xTB reference).

``make_codes`` gets or creates a localhost computer and the four codes, so that several sessions or modules can
ask for them; the session fixtures in ``conftest.py`` run the campaign once per test session.
"""

from __future__ import annotations

from aiida import orm
from aiida.common.exceptions import NotExistent

from aiida_chimes.workflows.hierarchical import HierarchicalFitWorkChain

#: Small C/N settings: 2-body order 6, 3-body order 2, short cutoffs (cells of 8-12 atoms).
SETTINGS = {
    "types": ["C", "N"],
    "pairs": {
        "C-C": {"s_minim": 1.0, "s_maxim": 4.0, "morse_lambda": 1.4},
        "N-N": {"s_minim": 0.9, "s_maxim": 4.0, "morse_lambda": 1.1},
        "C-N": {"s_minim": 0.95, "s_maxim": 4.0, "morse_lambda": 1.3},
    },
    "orders": [6, 2, 0],
    "fit_energy": True,
    "fit_stress": "all",
    "special": {"3B S_MAXIM": 3.0},
    "fcut_type": "TERSOFF",
    "fcut_var": 0.75,
}
STATE_POINTS = {
    "C": {"temperature": 1500.0, "composition": {"C": 8}, "density": 2.0, "min_distance": 1.2},
    "N": {"temperature": 1500.0, "composition": {"N": 8}, "density": 1.6, "min_distance": 1.1},
    "CN": {"temperature": 1500.0, "composition": {"C": 5, "N": 5}, "density": 1.9, "min_distance": 1.1},
}
TINY = {
    "md_parameters": {
        "ensemble": "nvt",
        "thermostat": "langevin",
        "timestep": 0.25,
        "steps": 40,
        "output_interval": 10,
        "thermo_interval": 10,
    },
    "selection": {"method": "evenly", "n_select": 2, "max_penalty": 1},
    "initial": {"n_frames": 4, "rattle": 0.05, "strain": 0.02},
}
XTB = {"method": "GFN1-xTB", "electronic_temperature": 1000.0}


def campaign_builder(codes, *, max_cycles=1, **inputs):
    """The fast protocol made tiny; ``inputs`` are set on the builder."""
    builder = HierarchicalFitWorkChain.get_builder_from_protocol(
        codes, SETTINGS, STATE_POINTS, protocol="fast", xtb_parameters=XTB
    )
    for key, value in inputs.items():
        builder[key] = value
    al = builder.active_learning
    al.md_parameters = orm.Dict(TINY["md_parameters"])
    al.selection = orm.Dict(TINY["selection"])
    al.initial = orm.Dict(TINY["initial"])
    al.max_cycles = orm.Int(max_cycles)
    return builder


CODE_SPECS = {"design_matrix": ("chimes-lsq", "chimes.design_matrix"),
              "regression": ("chimes-solve", "chimes.regression"),
              "md": ("chimes-md", "chimes.md"), "label": ("chimes-label", "chimes.label_xtb")}


def make_codes(workdir: str, label: str = "campaign-localhost") -> dict:
    """The four codes of a campaign on a localhost computer ``label`` (both created when missing)."""
    from tests.calculations.conftest import script_path

    try:
        computer = orm.Computer.collection.get(label=label)
    except NotExistent:
        computer = orm.Computer(label=label, hostname="localhost", transport_type="core.local",
                                scheduler_type="core.direct", workdir=workdir).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.configure()
    codes = {}
    for key, (name, plugin) in CODE_SPECS.items():
        try:
            codes[key] = orm.load_code(f"{label}-{name}@{label}")
        except NotExistent:
            codes[key] = orm.InstalledCode(computer=computer, filepath_executable=script_path(name),
                                           label=f"{label}-{name}", default_calc_job_plugin=plugin).store()
    return codes
