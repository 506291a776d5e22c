"""Expand the sweep in the ``llc`` config section into content-addressed targets and runs.

Pure Python (no JAX, no NumPy): the rules call :func:`expand_sweep` at parse time.

* A target's id is the content hash of its *resolved* config (family defaults filled in,
  display name left out), so the same target is built once however many samplers use it,
  and any change to what determines its data or w* gives a new id.
* A run's id is the content hash of the target id plus the resolved sampler config.
"""

from __future__ import annotations

import math
import re

from common import content_hash

FAMILIES = ("linear", "rrr", "dln", "mlp")
SAMPLER_KINDS = ("sgld", "hmc")
SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

TARGET_DEFAULTS = {"noise": 1.0, "seed": 0}
TRAINING_DEFAULTS = {"steps": 5000, "learning_rate": 0.01, "init_scale": 0.5}
COMMON_SAMPLER_DEFAULTS = {"chains": 4, "seed": 0, "gamma": 1.0, "nbeta": None}
KIND_DEFAULTS = {
    # SGLD's Euler step inflates the stationary variance of a direction of curvature a by
    # about eps*a/4; with a ~ 2*n*beta = 290 at n = 1000, eps = 4e-4 keeps that near 3%.
    # Smaller steps mix the flat (singular) directions too slowly for a CI-sized run.
    "sgld": {"draws": 4000, "burnin": 1000, "step_size": 4e-4, "batch_size": None},
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


class SweepError(ValueError):
    """The sweep config is inconsistent; the message names the entry and the field at fault."""


def default_nbeta(n: int) -> float:
    """n * beta* with the WBIC inverse temperature beta* = 1 / log n."""
    return n / math.log(n)


def resolve_target(entry: dict, index: int) -> tuple[str, dict]:
    """Return (display name, resolved target config) for one entry of ``llc.targets``."""
    where = f"llc.targets[{index}]"
    cfg = {**TARGET_DEFAULTS, **{k: v for k, v in entry.items() if k != "name"}}
    family = cfg["family"]
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
    return name, cfg


def resolve_sampler(entry: dict, index: int) -> tuple[str, dict]:
    """Return (display name, resolved sampler config) for one entry of ``llc.samplers``."""
    where = f"llc.samplers[{index}]"
    kind = entry["kind"]
    stray = (
        set(entry)
        - {"name", "kind"}
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
    return entry.get("name") or kind, cfg


def expand_sweep(section: dict) -> tuple[dict, dict]:
    """Expand the validated ``llc`` config section.

    Returns ``(targets, runs)``: ``targets[target_id] = {"name", "config"}`` and
    ``runs[run_id] = {"target_id", "target_name", "sampler_name", "sampler"}``. Every
    sampler runs on every target; duplicate entries collapse onto one id.
    """
    x64 = section.get("jax_enable_x64", True)
    targets, runs = {}, {}
    for t_index, t_entry in enumerate(section.get("targets", [])):
        t_name, t_cfg = resolve_target(t_entry, t_index)
        t_cfg["x64"] = x64
        target_id = content_hash(t_cfg)
        targets.setdefault(target_id, {"name": t_name, "config": t_cfg})
        for s_index, s_entry in enumerate(section.get("samplers", [])):
            s_name, s_cfg = resolve_sampler(s_entry, s_index)
            s_cfg["x64"] = x64 if s_cfg.get("x64") is None else s_cfg["x64"]
            run_id = content_hash({"target_id": target_id, "sampler": s_cfg})
            runs.setdefault(
                run_id,
                {"target_id": target_id, "target_name": t_name, "sampler_name": s_name, "sampler": s_cfg},
            )
    return targets, runs
