"""Fit settings as a JSON-able dict (what AiiDA ``Dict`` inputs hold) <-> a validated :class:`FitSetup`.

The dict uses :func:`make_fit_setup`'s argument names with JSON-friendly keys::

    {"types": ["C", "N"], "orders": [12, 6, 3],
     "pairs": {"C-C": {"s_minim": 0.98, "s_maxim": 5.0, "morse_lambda": 1.4}, "N-N": {...}, "C-N": {...}},
     "fit_energy": true, "fit_stress": "all", "fit_stress_first": null, "fit_energy_first": null,
     "hierarchical": true, "exclude": {"1": ["C"], "2": ["C C"], "3": ["C C C"], "4": ["C C C C"]},
     "special": {"3B S_MAXIM": 4.5, "4B S_MAXIM": [["CCCCCNCCCNCN", ["CC", "CC", "CN", "CC", "CN", "CN"],
                                                    [3.5, 3.5, 3.5, 3.5, 3.5, 3.5]]]},
     "fcut_type": "TERSOFF", "fcut_var": 0.75}

Types may also be ``[symbol, charge, mass]`` lists.  Every other key is a :class:`FitSetup` field name.
"""

from __future__ import annotations

from .fit_setup import FitSetup, FitSetupError, TrajectorySource, make_fit_setup

#: FitSetup fields that a settings dict may set (the rest are derived or describe the training files).
SETTING_KEYS = ("types", "pairs", "orders", "nlayers", "wrap", "fit_stress", "fit_stress_first", "fit_energy",
                "fit_energy_first", "cheby_type", "cheby_range", "cheby_fix", "hierarchical", "exclude", "special",
                "fcut_type", "fcut_var")
_REQUIRED = ("types", "pairs", "orders")


def _pair_key(key: str, source: str) -> tuple[str, str]:
    parts = key.replace("-", " ").split()
    if len(parts) != 2:
        raise FitSetupError(source, None, f"pair key {key!r} must name two atom types, e.g. 'C-N'")
    return parts[0], parts[1]


def _special_key(key: str, source: str) -> tuple[str, str]:
    parts = key.split()
    if len(parts) != 2 or parts[0] not in ("3B", "4B") or parts[1] not in ("S_MINIM", "S_MAXIM"):
        raise FitSetupError(source, None, f"special key {key!r} must be '3B S_MAXIM', '3B S_MINIM', '4B S_MAXIM' "
                                          "or '4B S_MINIM'")
    return parts[0], parts[1]


def setup_from_settings(settings: dict, trajectories, base_dir: str = ".", source: str = "fit settings",
                        **kwargs) -> FitSetup:
    """A validated :class:`FitSetup` from a settings dict and the training files (see make_fit_setup)."""
    settings = dict(settings)
    unknown = sorted(set(settings) - set(SETTING_KEYS))
    if unknown:
        raise FitSetupError(source, None, f"unknown fit setting(s) {unknown}; allowed: {list(SETTING_KEYS)}")
    missing = [k for k in _REQUIRED if k not in settings]
    if missing:
        raise FitSetupError(source, None, f"missing fit setting(s) {missing}")
    pairs = settings.pop("pairs")
    if not isinstance(pairs, dict):
        raise FitSetupError(source, None, "'pairs' must map 'A-B' to {s_minim, s_maxim, morse_lambda}")
    args = {}
    for key, value in pairs.items():
        if not isinstance(value, dict) or not {"s_minim", "s_maxim", "morse_lambda"} <= set(value):
            raise FitSetupError(source, None, f"pair {key!r} needs s_minim, s_maxim and morse_lambda, got {value}")
        extra = set(value) - {"s_minim", "s_maxim", "morse_lambda", "s_delta"}
        if extra:
            raise FitSetupError(source, None, f"pair {key!r}: unknown keys {sorted(extra)}")
        args[_pair_key(key, source)] = dict(value)
    special = {_special_key(k, source): v for k, v in dict(settings.pop("special", None) or {}).items()}
    types = [t if isinstance(t, str) else tuple(t) for t in settings.pop("types")]
    try:
        return make_fit_setup(types, args, settings.pop("orders"), trajectories, special=special, base_dir=base_dir,
                              source=source, **settings, **kwargs)
    except TypeError as exc:  # a wrong value type reaching the dataclass
        raise FitSetupError(source, None, f"bad fit setting: {exc}") from None


def validate_settings(settings: dict, source: str = "fit settings") -> FitSetup:
    """Check a settings dict without training data (one placeholder training file); raises FitSetupError."""
    return setup_from_settings(settings, [TrajectorySource("training.xyzf", 1)], source=source)


def settings_from_setup(setup: FitSetup) -> dict:
    """The settings dict of a FitSetup (e.g. read from an official ``fm_setup.in``); inverse of the above."""
    out = {
        "types": [[t, c, m] for t, c, m in zip(setup.types, setup.charges, setup.masses, strict=True)],
        "pairs": {f"{p.atom1}-{p.atom2}": {"s_minim": p.s_minim, "s_maxim": p.s_maxim, "morse_lambda": p.morse_lambda,
                                           "s_delta": p.s_delta} for p in setup.pairs},
        "orders": list(setup.orders),
    }
    for key in SETTING_KEYS[3:]:
        value = getattr(setup, key)
        if key == "exclude":
            value = {str(body): [" ".join(e) for e in entries] for body, entries in value.items()}
        elif key == "special":
            value = {f"{k[0]} {k[1]}": (v.value if v.mode == "ALL" else [[e[0], list(e[1]), list(e[2])]
                                                                        for e in v.entries])
                     for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


__all__ = ["SETTING_KEYS", "settings_from_setup", "setup_from_settings", "validate_settings"]
