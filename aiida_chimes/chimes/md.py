"""Molecular dynamics with a ChIMES potential: ASE integrators over :class:`ChimesCalculator`, with checks.

The engine behind ``chimes-md``.  :class:`MDSettings` validates the ``md.json`` dictionary; :func:`run_md` runs
NVE / NVT / NPT with ASE's integrators, flags frames with pairs in the 2-body penalty region, stops on a blow-up
(NaN, atoms too close, runaway temperature) and writes ``trajectory.npz``, ``thermo.npz``, ``final.npz``,
``final_velocities.npy`` and ``md_summary.json`` (see :data:`OUTPUT_FILES`), also part-way (status 'running',
about every 10 % of the steps) and after a failure.
Units inside are ASE's; files use eV, Angstrom, fs, K, GPa.  Velocities on file are Angstrom/fs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from array import array
from dataclasses import dataclass, field

import numpy as np
from ase import units

from .frames import FrameSet
from .units import GPA_PER_EV_A3

#: Thermostat (or barostat) names allowed per ensemble; the first one is the default.
THERMOSTATS = {"nve": ("none",), "nvt": ("langevin", "bussi", "nose-hoover"), "npt": ("mtk", "berendsen")}
#: Top-level keys of ``md.json``.
MD_KEYS = ("ensemble", "thermostat", "temperature", "pressure", "timestep", "steps", "output_interval",
           "thermo_interval", "seed", "friction", "tau", "tau_p", "compressibility", "penalty", "blowup",
           "num_threads", "tags")
#: Output file names, written in the output folder.
OUTPUT_FILES = {"trajectory": "trajectory.npz", "thermo": "thermo.npz", "final": "final.npz",
                "final_velocities": "final_velocities.npy", "summary": "md_summary.json"}
#: ``thermo.npz`` array names.
THERMO_ARRAYS = ("step", "time_fs", "potential_energy", "kinetic_energy", "total_energy", "conserved_energy",
                 "temperature", "pressure_GPa", "volume")
#: Exit codes of ``chimes-md``.
EXIT_OK, EXIT_INPUT, EXIT_BLOWUP = 0, 2, 3


class MDInputError(ValueError):
    """Invalid MD input; the message names the file, the key and the fix."""


class BlowUp(Exception):
    """The trajectory left the physical region (the message says how and at which step)."""


# ------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class MDSettings:
    """Validated ``md.json`` content (times in fs, temperature K, pressure GPa, friction 1/fs)."""

    ensemble: str
    timestep: float
    steps: int
    thermostat: str = "none"
    temperature: float | None = None
    pressure: float | None = None
    output_interval: int = 10
    thermo_interval: int | None = None  # default: output_interval
    seed: int = 0
    friction: float = 0.01
    tau: float | None = None  # default 100 timesteps
    tau_p: float | None = None  # default 1000 timesteps
    compressibility: float = 0.01  # 1/GPa, Berendsen barostat only
    max_penalty_pairs: int = 0
    min_distance: float = 0.5
    max_temperature_factor: float = 10.0
    num_threads: int | None = None
    tags: dict = field(default_factory=dict)

    @property
    def thermostat_tau(self) -> float:
        return self.tau if self.tau is not None else 100.0 * self.timestep

    @property
    def barostat_tau(self) -> float:
        return self.tau_p if self.tau_p is not None else 1000.0 * self.timestep

    @property
    def thermo_every(self) -> int:
        return self.thermo_interval if self.thermo_interval is not None else self.output_interval

    @classmethod
    def from_dict(cls, data, source: str = "md.json", has_velocities: bool = False) -> MDSettings:
        """Check every key of ``data`` (a parsed ``md.json``) and fill the defaults."""
        if not isinstance(data, dict):
            raise MDInputError(f"{source}: expected a JSON object with keys {list(MD_KEYS)}")
        unknown = [k for k in data if k not in MD_KEYS]
        if unknown:
            raise MDInputError(f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(MD_KEYS)})")
        v = _Validator(data, source)
        ensemble = v.choice("ensemble", tuple(THERMOSTATS), required=True)
        allowed = THERMOSTATS[ensemble]
        thermostat = v.choice("thermostat", allowed, default=allowed[0])
        temperature = v.number("temperature", minimum=0.0, required=ensemble != "nve" or not has_velocities)
        if ensemble != "nve" and temperature <= 0:
            raise MDInputError(f"{source}: key 'temperature' must be > 0 K for ensemble {ensemble!r}")
        kwargs = dict(
            ensemble=ensemble, thermostat=thermostat, temperature=temperature,
            timestep=v.number("timestep", minimum=0.0, strict=True, required=True),
            steps=v.integer("steps", minimum=0, required=True),
            output_interval=v.integer("output_interval", minimum=1, default=10),
            thermo_interval=v.integer("thermo_interval", minimum=1, default=None),
            seed=v.integer("seed", minimum=0, default=0),
            num_threads=v.integer("num_threads", minimum=1, default=None),
            tags=v.mapping("tags", default={}),
        )
        if ensemble == "npt":
            kwargs["pressure"] = v.number("pressure", required=True)
        v.only_for("pressure", ensemble == "npt", "ensemble 'npt'")
        v.only_for("friction", thermostat == "langevin", "thermostat 'langevin'")
        v.only_for("tau", thermostat not in ("none", "langevin"), "thermostats bussi, nose-hoover, mtk, berendsen")
        v.only_for("tau_p", ensemble == "npt", "ensemble 'npt'")
        v.only_for("compressibility", thermostat == "berendsen", "the npt barostat 'berendsen'")
        for key in ("friction", "tau", "tau_p", "compressibility"):
            if key in data:
                kwargs[key] = v.number(key, minimum=0.0, strict=True)
        penalty = v.sub_dict("penalty", ("max_pairs",))
        kwargs["max_penalty_pairs"] = penalty.integer("max_pairs", minimum=0, default=0)
        blowup = v.sub_dict("blowup", ("min_distance", "max_temperature_factor"))
        kwargs["min_distance"] = blowup.number("min_distance", minimum=0.0, default=0.5)
        kwargs["max_temperature_factor"] = blowup.number("max_temperature_factor", minimum=1.0, default=10.0)
        return cls(**kwargs)


class _Validator:
    """Typed look-ups in one JSON object, with errors naming the file and the key."""

    def __init__(self, data: dict, source: str, prefix: str = ""):
        self.data, self.source, self.prefix = data, source, prefix

    def _fail(self, key, what):
        raise MDInputError(f"{self.source}: key '{self.prefix}{key}' {what}")

    def _get(self, key, required, default):
        if key not in self.data:
            if required:
                self._fail(key, "is missing")
            return default, False
        return self.data[key], True

    def number(self, key, minimum=None, strict=False, required=False, default=None):
        value, present = self._get(key, required, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self._fail(key, f"must be a finite number, got {value!r}")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            self._fail(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, key, minimum=None, required=False, default=None):
        value, present = self._get(key, required, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(key, f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            self._fail(key, f"must be >= {minimum}, got {value!r}")
        return int(value)

    def choice(self, key, allowed, required=False, default=None):
        value, present = self._get(key, required, default)
        if present and value not in allowed:
            self._fail(key, f"must be one of {list(allowed)} here, got {value!r}")
        return value

    def mapping(self, key, default=None):
        value, present = self._get(key, False, default)
        if present and not isinstance(value, dict):
            self._fail(key, f"must be a JSON object, got {value!r}")
        return dict(value)

    def only_for(self, key, applies, where):
        if key in self.data and not applies:
            self._fail(key, f"applies only to {where}; remove it")

    def sub_dict(self, key, keys) -> _Validator:
        value = self.mapping(key, default={})
        unknown = [k for k in value if k not in keys]
        if unknown:
            self._fail(f"{key}.{unknown[0]}", f"is unknown (allowed: {', '.join(keys)})")
        return _Validator(value, self.source, prefix=f"{key}.")


# ------------------------------------------------------------------------------------------------- dynamics
def initial_velocities(atoms, settings: MDSettings, rng) -> None:
    """Maxwell-Boltzmann momenta at ``settings.temperature`` from ``rng``, centre-of-mass motion removed."""
    from ase.md.velocitydistribution import Stationary

    try:  # ASE >= 3.29 name; same distribution as MaxwellBoltzmannDistribution
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as _mb

        def thermalize_momenta(atoms, temperature_K, rng=None):
            _mb(atoms, temperature_K=temperature_K, rng=rng)

    temperature = settings.temperature or 0.0
    if temperature > 0:
        thermalize_momenta(atoms, temperature, rng=rng)
        Stationary(atoms)
    else:
        atoms.set_momenta(np.zeros((len(atoms), 3)))


def make_dynamics(atoms, settings: MDSettings, rng):
    """The ASE integrator for ``settings`` (thermostat noise from ``rng``)."""
    dt = settings.timestep * units.fs
    kind = settings.thermostat
    if settings.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt)
    temp = settings.temperature
    if kind == "langevin":
        from ase.constraints import FixCom
        from ase.md.langevin import Langevin

        atoms.set_constraint(FixCom())  # ASE's recommended replacement of fixcm=True
        return Langevin(atoms, timestep=dt, temperature_K=temp, friction=settings.friction / units.fs,
                        fixcm=False, rng=rng)
    tau = settings.thermostat_tau * units.fs
    if kind == "bussi":
        Bussi = _ase_class("ase.md.bussi", "Bussi", kind)
        return Bussi(atoms, timestep=dt, temperature_K=temp, taut=tau, rng=rng)
    if kind == "nose-hoover":
        nhc = _ase_class("ase.md.nose_hoover_chain", "NoseHooverChainNVT", kind)
        return nhc(atoms, timestep=dt, temperature_K=temp, tdamp=tau)
    pressure_au = settings.pressure / GPA_PER_EV_A3
    taup = settings.barostat_tau * units.fs
    if kind == "mtk":
        mtk = _ase_class("ase.md.nose_hoover_chain", "IsotropicMTKNPT", kind)
        return mtk(atoms, timestep=dt, temperature_K=temp, pressure_au=pressure_au, tdamp=tau, pdamp=taup)
    from ase.md.nptberendsen import NPTBerendsen

    return NPTBerendsen(atoms, timestep=dt, temperature_K=temp, pressure_au=pressure_au, taut=tau, taup=taup,
                        compressibility_au=settings.compressibility * GPA_PER_EV_A3, fixcm=True)


def _ase_class(module: str, name: str, kind: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        import ase

        raise MDInputError(f"md.json: thermostat {kind!r} needs {module}.{name}, which ASE {ase.__version__} "
                           "lacks; upgrade ASE (>= 3.25) or choose another thermostat") from None


def conserved_energy(dyn, epot: float, ekin: float) -> float:
    """The integrator's conserved quantity (NVE, Nose-Hoover, MTK, Bussi); the total energy otherwise."""
    if hasattr(dyn, "get_conserved_energy"):
        return float(dyn.get_conserved_energy())
    if hasattr(dyn, "transferred_energy"):  # Bussi: energy taken out by the thermostat so far
        return epot + ekin - float(dyn.transferred_energy)
    return epot + ekin


def penalty_threshold(params) -> float:
    """Smallest distance where some pair type's penalty region (r < s_minim + penalty dist) ends."""
    dist, _ = params.penalty
    return min(float(q.s_minim) for q in params.pairs) + dist


def min_pair_distance(atoms, cutoff: float) -> float:
    """Shortest interatomic distance below ``cutoff`` (inf when none), minimum image for periodic cells."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, cutoff, self_interaction=False)
    return float(d.min()) if len(d) else math.inf


# ------------------------------------------------------------------------------------------------- recording
class _Record:
    """Stored frames, thermo rows and per-step series of one run; writes the output files."""

    def __init__(self, atoms, settings: MDSettings, outdir: str):
        self.settings, self.outdir = settings, outdir
        self.numbers = atoms.numbers.copy()
        self.pbc = atoms.pbc.copy()
        self.frames: list[tuple[np.ndarray, np.ndarray, dict]] = []
        self.thermo: dict[str, list] = {k: [] for k in THERMO_ARRAYS}
        # one value per step (compact arrays: a million steps take 32 MB)
        self.series = {"time_fs": array("d"), "conserved": array("d"), "temperature": array("d"), "penalty": array("q")}
        self.last_good = None  # (positions, cell, velocities A/fs, tags)
        self.penalty_steps = 0

    def tags(self, step: int, penalty: int) -> dict:
        return {"step": step, "time_fs": step * self.settings.timestep, "penalty_pairs": penalty,
                "state_point": dict(self.settings.tags)}

    def frameset(self, frames) -> FrameSet:
        nf, n = len(frames), len(self.numbers)
        pos = np.concatenate([f[0] for f in frames]) if nf else np.zeros((0, 3))
        cells = np.array([f[1] for f in frames]).reshape(nf, 3, 3)
        return FrameSet(np.tile(self.numbers, nf), np.full(nf, n), pos, cells, np.tile(self.pbc, (nf, 1)),
                        np.full(nf, np.nan), np.full((nf * n, 3), np.nan), np.full((nf, 6), np.nan),
                        np.full(nf, np.nan), [f[2] for f in frames])

    def path(self, key: str) -> str:
        return os.path.join(self.outdir, OUTPUT_FILES[key])

    def write(self, summary: dict) -> None:
        """All output files for the data recorded so far (called part-way and at the end)."""
        self.frameset(self.frames).save(self.path("trajectory"))
        dtypes = {"step": np.int64}
        np.savez(self.path("thermo"), **{k: np.asarray(v, dtype=dtypes.get(k, float)) for k, v in self.thermo.items()})
        if self.last_good is not None:
            pos, cell, vel, tags = self.last_good
            self.frameset([(pos, cell, tags)]).save(self.path("final"))
            np.save(self.path("final_velocities"), vel)
        tmp = self.path("summary") + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(summary, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, self.path("summary"))


class _Monitor:
    """ASE observer: checks each step for a blow-up, records thermo rows and frames, prints progress."""

    def __init__(self, dyn, atoms, calc, settings: MDSettings, record: _Record, log):
        self.dyn, self.atoms, self.calc, self.settings, self.record, self.log = dyn, atoms, calc, settings, record, log
        self.natoms = len(atoms)
        self.periodic = bool(atoms.pbc.all())
        self.ref_temperature = settings.temperature if settings.temperature else atoms.get_temperature()
        # every pair closer than min_distance is also in the penalty region when min_distance is below the
        # penalty threshold, so the (costly) distance check is needed only at steps with penalty pairs then
        self.always_check_distance = settings.min_distance > penalty_threshold(calc.params)
        self.progress_every = max(1, settings.steps // 10)
        self.on_progress = None

    def __call__(self):
        atoms, st, rec = self.atoms, self.settings, self.record
        step = self.dyn.nsteps
        epot = float(atoms.get_potential_energy())
        forces = atoms.get_forces()
        if not (math.isfinite(epot) and np.isfinite(forces).all()):
            raise BlowUp(f"non-finite {'energy' if not math.isfinite(epot) else 'forces'} at step {step}")
        penalty = int(self.calc.penalty_pairs)
        if st.min_distance > 0 and (penalty > 0 or self.always_check_distance):
            dmin = min_pair_distance(atoms, st.min_distance)
            if dmin < st.min_distance:
                raise BlowUp(f"atoms {dmin:.3f} A apart (< blowup.min_distance {st.min_distance:g}) at step {step}")
        ekin = float(atoms.get_kinetic_energy())
        temp = float(atoms.get_temperature())
        if not math.isfinite(ekin):
            raise BlowUp(f"non-finite kinetic energy at step {step}")
        if self.ref_temperature > 0 and temp > st.max_temperature_factor * self.ref_temperature:
            raise BlowUp(f"temperature {temp:.0f} K > {st.max_temperature_factor:g} x {self.ref_temperature:.0f} K "
                         f"at step {step}")
        econs = conserved_energy(self.dyn, epot, ekin)
        time_fs = step * st.timestep
        for key, value in (("time_fs", time_fs), ("conserved", econs), ("temperature", temp), ("penalty", penalty)):
            rec.series[key].append(value)
        if penalty > st.max_penalty_pairs:
            rec.penalty_steps += 1
        tags = rec.tags(step, penalty)
        rec.last_good = (atoms.positions.copy(), atoms.cell.array.copy(), atoms.get_velocities() * units.fs, tags)
        if step % st.thermo_every == 0:
            if self.periodic:
                stress = atoms.get_stress(voigt=False, include_ideal_gas=True)
                pressure, volume = -np.trace(stress) / 3.0 * GPA_PER_EV_A3, atoms.get_volume()
            else:
                pressure = volume = math.nan
            row = (step, time_fs, epot, ekin, epot + ekin, econs, temp, pressure, volume)
            for key, value in zip(THERMO_ARRAYS, row, strict=True):
                rec.thermo[key].append(value)
        if step % st.output_interval == 0:
            rec.frames.append((atoms.positions.copy(), atoms.cell.array.copy(), tags))
        if step % self.progress_every == 0 or step == st.steps:
            print(f"step {step:>9d}/{st.steps}  t {time_fs:10.2f} fs  Epot {epot:14.5f} eV  T {temp:9.1f} K  "
                  f"Econs {econs:14.5f} eV  penalty {penalty}", file=self.log, flush=True)
            if self.on_progress is not None and 0 < step < st.steps:
                self.on_progress()


# ------------------------------------------------------------------------------------------------- driver
def run_md(atoms, calc, settings: MDSettings, outdir: str = ".", velocities=None, log=None) -> dict:
    """Run the MD of ``settings`` from ``atoms`` with ChIMES calculator ``calc``; write the outputs; return the summary.

    ``velocities`` (N, 3) in Angstrom/fs, or None for Maxwell-Boltzmann ones at ``settings.temperature``.  A blow-up
    ends the run with ``summary['status'] == 'blowup'`` (not an exception); everything recorded up to the last good
    step is written.  An interrupt (KeyboardInterrupt) writes the outputs with status 'interrupted' and re-raises.
    """
    log = sys.stdout if log is None else log
    wall0 = time.perf_counter()
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.set_constraint()
    symbols = set(atoms.get_chemical_symbols())
    missing = sorted(symbols - set(calc.params.symbols))
    if missing:
        raise MDInputError(f"structure has elements {missing} that the parameter file lacks "
                           f"(it has {calc.params.symbols}); use a potential covering every element")
    if settings.ensemble == "npt" and not atoms.pbc.all():
        raise MDInputError("md.json: ensemble 'npt' needs a fully periodic structure (pbc all True)")
    v_rng, t_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(2))
    if velocities is not None:
        atoms.set_velocities(np.asarray(velocities, dtype=float) / units.fs)
    else:
        initial_velocities(atoms, settings, v_rng)
    try:
        atoms.get_potential_energy()  # numba compilation / cache load outside the timed loop
    except (ValueError, KeyError) as exc:
        raise MDInputError(f"structure: the ChIMES evaluation fails ({exc})") from exc
    try:
        dyn = make_dynamics(atoms, settings, t_rng)
    except MDInputError:
        raise
    except ValueError as exc:  # e.g. Bussi refuses zero initial velocities
        raise MDInputError(f"md.json: cannot start thermostat {settings.thermostat!r} ({exc})") from exc
    record = _Record(atoms, settings, outdir)
    monitor = _Monitor(dyn, atoms, calc, settings, record, log)
    status, reason, loop_wall = "running", None, 0.0

    def summary() -> dict:
        return _summary(record, settings, len(atoms), status, reason, time.perf_counter() - wall0, loop_wall)

    monitor.on_progress = lambda: record.write(summary())
    dyn.attach(monitor, interval=1)
    print(f"chimes-md: {settings.ensemble} ({settings.thermostat}) {len(atoms)} atoms, {settings.steps} steps x "
          f"{settings.timestep:g} fs, seed {settings.seed}", file=log, flush=True)
    t0 = time.perf_counter()
    try:
        dyn.run(settings.steps)
        status = "completed"
    except BlowUp as exc:
        status, reason = "blowup", str(exc)
    except (ArithmeticError, ValueError, RuntimeError) as exc:  # the evaluator fails on a broken geometry
        status, reason = "blowup", f"evaluation failed after step {_last_step(record)}: {exc}"
    except KeyboardInterrupt:
        status, reason = "interrupted", "interrupted (signal) after step " + str(_last_step(record))
        raise
    finally:
        loop_wall = time.perf_counter() - t0
        result = summary()
        record.write(result)
        if status == "blowup":
            print(f"chimes-md: blow-up: {reason}", file=log, flush=True)
    return result


def _last_step(record: _Record) -> int:
    return int(record.last_good[3]["step"]) if record.last_good is not None else -1


def _summary(record: _Record, settings: MDSettings, natoms: int, status: str, reason, wall: float,
             loop_wall: float) -> dict:
    series = record.series
    steps_done = max(len(series["time_fs"]) - 1, 0)
    penalties = [f[2]["penalty_pairs"] for f in record.frames]
    out = {
        "status": status,
        "reason": reason,
        "steps_done": steps_done,
        "frames": len(record.frames),
        "penalty_frames": [i for i, p in enumerate(penalties) if p > settings.max_penalty_pairs],
        "max_penalty_pairs": int(max(series["penalty"], default=0)),
        "penalty_steps": record.penalty_steps,
        "mean_temperature": float(np.mean(series["temperature"])) if len(series["temperature"]) else None,
        "wall_seconds": wall,
        "seconds_per_step": loop_wall / steps_done if steps_done else None,
    }
    if settings.ensemble == "nve":
        out["nve_drift_meV_per_atom_per_ps"] = drift_rate(series["time_fs"], series["conserved"], natoms)
    return out


def drift_rate(time_fs, energy, natoms: int) -> float | None:
    """Slope of a linear fit of energy/atom against time, in meV/atom/ps (None with fewer than 3 points)."""
    if len(time_fs) < 3:
        return None
    t_ps = np.asarray(time_fs, dtype=float) * 1e-3
    e_mev = (np.asarray(energy, dtype=float) - energy[0]) / natoms * 1e3
    return float(np.polyfit(t_ps, e_mev, 1)[0])


__all__ = ["EXIT_BLOWUP", "EXIT_INPUT", "EXIT_OK", "MD_KEYS", "OUTPUT_FILES", "THERMOSTATS", "BlowUp",
           "MDInputError", "MDSettings", "drift_rate", "make_dynamics", "run_md"]
