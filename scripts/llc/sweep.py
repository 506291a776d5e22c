"""Expand the sweep in the ``llc`` config section into content-addressed targets and runs.

Pure Python (no JAX, no NumPy): the rules call :func:`expand_sweep` at parse time.

* A target's id is the content hash of its *resolved* config (family defaults filled in,
  numbers canonical, display name left out), so the same target is built once however many
  samplers use it, and any change to what determines its data or w* gives a new id.
* A run's id is the content hash of the target id plus the resolved sampler config.
* Names are labels: they travel beside the ids (for tables, logs of the aggregate, figures),
  never in what a build or sampler job receives, so renaming reruns nothing but the aggregate.
* A sampler entry with ``calibrate`` has no fixed run: its step size is chosen by the
  calibration job (``llc.calibrate``), and the run's id follows the chosen value.
"""

from __future__ import annotations

import math
import re

from common import content_hash

FAMILIES = ("linear", "rrr", "dln", "mlp", "custom")
SAMPLER_KINDS = ("sgld", "hmc")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
MODEL_SPEC = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")

TARGET_DEFAULTS = {"noise": 1.0, "seed": 0}
CUSTOM_DEFAULTS = {
    "seed": 0,
    "model_dir": ".",
    "model_args": {},
    "params": None,
    "inputs": None,
    "outputs": None,
}
TRAINING_DEFAULTS = {"steps": 5000, "learning_rate": 0.01, "init_scale": 0.5}
COMMON_SAMPLER_DEFAULTS = {"chains": 4, "seed": 0, "gamma": 1.0, "nbeta": None}
KIND_DEFAULTS = {
    # SGLD's Euler step inflates the stationary variance of a direction of curvature a by
    # about eps*a/4; with a ~ 2*n*beta = 290 at n = 1000, eps = 4e-4 keeps that near 3%.
    # Smaller steps mix the flat (singular) directions too slowly for a CI-sized run.
    # eval_every (minibatch only): steps between full-batch loss evaluations; null = once per
    # pass over the data (n / batch_size steps).
    "sgld": {"draws": 4000, "burnin": 1000, "step_size": 4e-4, "batch_size": None, "eval_every": None},
    "hmc": {
        "draws": 1000,
        "burnin": 200,
        "warmup": 400,
        "num_integration_steps": 16,
        "target_acceptance": 0.8,
        "step_jitter": 0.2,
    },
}
KIND_KEYS = {kind: set(defaults) - {"draws", "burnin"} for kind, defaults in KIND_DEFAULTS.items()}
CALIBRATE_DEFAULTS = {"chains": 2, "draws": 600, "burnin": 100, "min_acceptance": 0.9, "max_r_hat": 1.1}


class SweepError(ValueError):
    """The sweep config is inconsistent; the message names the entry and the field at fault."""


def canonical(value):
    """Numbers in one spelling before hashing: an integral float becomes an int (1.0 -> 1).

    YAML reads ``gamma: 1`` as an int and ``gamma: 1.0`` as a float; both mean the same run.
    Booleans stay booleans (``True == 1`` in Python, but not in a config).
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def default_nbeta(n: int, batch_size: int | None = None) -> float:
    """n·β: n / log n with the full batch (β* = 1 / log n, WBIC); with a minibatch of size b,
    b / log b, devinterp's default (``default_nbeta(dataloader)``), so estimates compare."""
    size = n if batch_size is None else batch_size
    return size / math.log(size)


def default_eval_every(n: int, batch_size: int | None) -> int:
    """Minibatch SGLD: full-batch evaluations once per pass over the data (1 with the full batch)."""
    return 1 if batch_size is None else max(1, round(n / batch_size))


def resolve_target(entry: dict, index: int) -> tuple[str, dict]:
    """Return (display name, resolved canonical target config) for one entry of ``llc.targets``."""
    where = f"llc.targets[{index}]"
    family = entry["family"]
    if family == "custom":
        return resolve_custom_target(entry, where)
    missing = [key for key in ("widths", "n") if key not in entry]
    stray = [
        key
        for key in ("data", "model", "model_dir", "model_args", "params", "inputs", "outputs")
        if key in entry
    ]
    if missing or stray:
        raise SweepError(
            f"{where}: family '{family}' "
            + (
                f"needs {', '.join(missing)}"
                if missing
                else f"does not take {', '.join(stray)} (family custom does)"
            )
        )
    cfg = {**TARGET_DEFAULTS, **{k: v for k, v in entry.items() if k != "name"}}
    widths = list(cfg["widths"])
    rank = cfg.get("true_rank")
    expected = {"linear": 2, "rrr": 3}
    if family in expected and len(widths) != expected[family]:
        raise SweepError(
            f"{where}: family '{family}' needs widths of length {expected[family]}, got {widths}"
        )
    if family in ("dln", "mlp") and len(widths) < 2:
        raise SweepError(f"{where}: family '{family}' needs at least [input, output] widths, got {widths}")
    if family in ("rrr", "dln"):
        rank = 0 if rank is None else rank
        if rank > min(widths):
            raise SweepError(f"{where}: true_rank {rank} exceeds the narrowest width in {widths}")
        cfg["true_rank"] = rank
    elif rank is not None:
        raise SweepError(f"{where}: true_rank applies to families rrr and dln only, not '{family}'")
    if family == "mlp":
        cfg.setdefault("activation", "tanh")
    elif "activation" in cfg:
        raise SweepError(f"{where}: activation applies to family mlp only, not '{family}'")
    cfg["widths"] = widths
    cfg["training"] = {**TRAINING_DEFAULTS, **cfg.get("training", {})}
    name = entry.get("name") or f"{family}_{'x'.join(map(str, widths))}"
    return name, canonical(cfg)


def resolve_custom_target(entry: dict, where: str) -> tuple[str, dict]:
    """A user's dataset file and JAX model (``package.module:function``)."""
    missing = [key for key in ("data", "model") if key not in entry]
    stray = [key for key in ("widths", "n", "noise", "true_rank", "activation") if key in entry]
    if missing or stray:
        raise SweepError(
            f"{where}: family 'custom' "
            + (f"needs {', '.join(missing)}" if missing else f"does not take {', '.join(stray)}")
        )
    if not MODEL_SPEC.match(entry["model"]):
        raise SweepError(f"{where}: model '{entry['model']}' is not of the form package.module:function")
    cfg = {**CUSTOM_DEFAULTS, **{k: v for k, v in entry.items() if k != "name"}}
    is_parquet = str(cfg["data"]).endswith(".parquet")
    if is_parquet and not (cfg["inputs"] and cfg["outputs"]):
        raise SweepError(f"{where}: a parquet dataset needs the column lists 'inputs' and 'outputs'")
    if not is_parquet and not str(cfg["data"]).endswith(".npz"):
        raise SweepError(f"{where}: data '{cfg['data']}' must be a .npz (arrays x, y) or a .parquet file")
    cfg["training"] = {**TRAINING_DEFAULTS, **cfg.get("training", {})}
    name = entry.get("name") or entry["model"].rsplit(":", 1)[1]
    return name, canonical(cfg)


def resolve_sampler(entry: dict, index: int) -> tuple[str, dict]:
    """Return (display name, resolved canonical sampler config) for one entry of ``llc.samplers``."""
    where = f"llc.samplers[{index}]"
    kind = entry["kind"]
    stray = (
        set(entry)
        - {"name", "kind", "calibrate"}
        - set(COMMON_SAMPLER_DEFAULTS)
        - {"x64", "draws", "burnin"}
        - KIND_KEYS[kind]
    )
    if stray:
        raise SweepError(f"{where}: field(s) {sorted(stray)} do not apply to kind '{kind}'")
    cfg = {**COMMON_SAMPLER_DEFAULTS, **KIND_DEFAULTS[kind]}
    cfg.update({k: v for k, v in entry.items() if k != "name"})
    if cfg["burnin"] >= cfg["draws"]:
        raise SweepError(f"{where}: burnin ({cfg['burnin']}) must be smaller than draws ({cfg['draws']})")
    if kind == "sgld" and cfg["batch_size"] is not None and cfg["batch_size"] < 2 and cfg["nbeta"] is None:
        raise SweepError(f"{where}: batch_size 1 needs an explicit nbeta (the default is b / log b)")
    if "calibrate" in cfg:
        if kind != "sgld":
            raise SweepError(f"{where}: calibrate applies to kind sgld (HMC adapts its own step size)")
        cfg["calibrate"] = {**CALIBRATE_DEFAULTS, **cfg["calibrate"]}
        if not cfg["calibrate"].get("step_sizes"):
            raise SweepError(f"{where}: calibrate needs a list of step_sizes")
        if cfg["calibrate"]["burnin"] >= cfg["calibrate"]["draws"]:
            raise SweepError(f"{where}: calibrate.burnin must be smaller than calibrate.draws")
        for grid in ("nbetas", "gammas"):
            if grid in cfg["calibrate"] and not cfg["calibrate"][grid]:
                raise SweepError(f"{where}: calibrate.{grid} is empty (leave it out to keep the run's value)")
        cfg.pop("step_size")
    return entry.get("name") or kind, canonical(cfg)


def calibrated_sampler(sampler: dict, chosen: dict) -> dict:
    """The run config of a calibrated sampler: its ``calibrate`` block replaced by the chosen step,
    and by the chosen nβ and γ where the calibration searched a grid of them."""
    settings = sampler["calibrate"]
    resolved = {k: v for k, v in sampler.items() if k != "calibrate"}
    resolved["step_size"] = chosen["step_size"]
    for key, grid in (("nbeta", "nbetas"), ("gamma", "gammas")):
        if settings.get(grid) and key in chosen:
            resolved[key] = chosen[key]
    return canonical(resolved)


def run_id_of(target_id: str, sampler: dict) -> str:
    """Content hash of what a sampler job computes (never its names)."""
    return content_hash({"target_id": target_id, "sampler": canonical(sampler)})


def expand_sweep(section: dict) -> tuple[dict, dict, dict]:
    """Expand the validated ``llc`` config section.

    Returns ``(targets, runs, calibrations)``:
    ``targets[target_id] = {"name", "config"}``,
    ``runs[run_id] = {"target_id", "target_name", "sampler_name", "sampler"}``,
    ``calibrations[calibration_id]`` the same fields for a sampler whose step is calibrated.
    Every sampler runs on every target; duplicate entries collapse onto one id (first name wins).
    Jobs receive only ``config`` / ``{"target_id", "sampler"}``: see :func:`job_spec`.
    """
    x64 = section.get("jax_enable_x64", True)
    targets, runs, calibrations = {}, {}, {}
    for t_index, t_entry in enumerate(section.get("targets", [])):
        t_name, t_cfg = resolve_target(t_entry, t_index)
        t_cfg["x64"] = x64
        target_id = content_hash(t_cfg)
        targets.setdefault(target_id, {"name": t_name, "config": t_cfg})
        for s_index, s_entry in enumerate(section.get("samplers", [])):
            s_name, s_cfg = resolve_sampler(s_entry, s_index)
            s_cfg["x64"] = x64 if s_cfg.get("x64") is None else s_cfg["x64"]
            record = {"target_id": target_id, "target_name": t_name, "sampler_name": s_name, "sampler": s_cfg}
            table = calibrations if "calibrate" in s_cfg else runs
            table.setdefault(run_id_of(target_id, s_cfg), record)
    return targets, runs, calibrations


def job_spec(run: dict) -> dict:
    """What a sampler job receives: the target id and the sampler config, no names."""
    return {"target_id": run["target_id"], "sampler": run["sampler"]}
