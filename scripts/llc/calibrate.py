"""Opt-in calibration of SGLD's step size (checkpoint ``llc_calibrate``), as devinterp users do
by hand: short pilot chains at each step size of ``calibrate.step_sizes``, then the largest
step whose diagnostics pass. A pilot passes when its loss stays finite, its MALA acceptance
reaches ``min_acceptance`` (devinterp's guidance: about 0.9), its R-hat is below ``max_r_hat``,
and it has no loss excursion and no disagreeing chain. When no step passes, the smallest is
used and the choice says so (the gallery shows it).

The chosen step goes into the run's resolved config (``llc.sweep.calibrated_sampler``), so the
run id follows it; the evidence (every pilot's numbers and a figure) is kept beside it.
"""

if "snakemake" in globals():
    from llc.jax_env import configure_jax

    configure_jax(snakemake.resources.get("jax_platforms", "cpu"), snakemake.params.run["sampler"]["x64"])

import math

import jax
import jax.numpy as jnp
import numpy as np
from common import setup_logging, write_json
from jax.flatten_util import ravel_pytree

from llc.flags import run_flags
from llc.models import flat_loss
from llc.plots import plot_calibration
from llc.run_sampler import load_meta, load_target, resolved_nbeta
from llc.samplers import llc_statistics, sgld_sampler, sgld_traces
from llc.sweep import default_eval_every

FAILING_FLAGS = ("loss_excursion", "chain_disagreement")


def pilot_runner(sampler: dict, x, y, params, apply):
    """``step_size -> pilot record``: short SGLD chains, compiled once for the whole grid."""
    settings = sampler["calibrate"]
    n = x.shape[0]
    nbeta, _ = resolved_nbeta(sampler, n)
    w_star, _ = ravel_pytree(params)
    _, loss_fn = flat_loss(apply, params)
    l0 = float(loss_fn(w_star, x, y))
    batch = sampler["batch_size"]
    eval_every = 1 if batch is None else sampler["eval_every"] or default_eval_every(n, batch)
    shape = {
        "chains": settings["chains"],
        "draws": settings["draws"],
        "batch_size": batch,
        "eval_every": eval_every,
    }
    built = sgld_sampler(loss_fn, w_star, (x, y), nbeta=nbeta, gamma=sampler["gamma"], **shape)
    burnin = settings["burnin"] // eval_every

    def pilot(step_size: float) -> dict:
        traces = sgld_traces(built, jax.random.key(sampler["seed"]), step_size, n, **shape)
        record = {"step_size": step_size, "finite": bool(np.all(np.isfinite(traces["loss"])))}
        if not record["finite"]:
            return {**record, "passed": False, "reasons": ["the loss became non-finite"]}
        stats = llc_statistics(traces["loss"], l0, nbeta, burnin)
        record.update({k: v for k, v in stats.items() if not isinstance(v, list)})
        record["llc_per_chain"] = stats["llc_per_chain"]
        record["mala_acceptance"] = float(traces["mala_acceptance"][:, burnin:].mean())
        flags = run_flags(
            {**stats, "n": n, "num_params": int(w_star.size), "mala_acceptance": record["mala_acceptance"]},
            {"min_acceptance": settings["min_acceptance"], "max_r_hat": settings["max_r_hat"]},
        )
        reasons = [
            f"{flag}: {flags[flag]}"
            for flag in (*FAILING_FLAGS, "low_acceptance", "high_r_hat")
            if flag in flags
        ]
        return {**record, "passed": not reasons, "reasons": reasons}

    return pilot


def choose(pilots: list[dict]) -> dict:
    """The largest passing step size, else the smallest tried (``passed`` says which)."""
    passing = [p["step_size"] for p in pilots if p["passed"]]
    if passing:
        return {"step_size": max(passing), "passed": True}
    return {"step_size": min(p["step_size"] for p in pilots), "passed": False}


def calibrate(calibration_id: str, run: dict, paths: dict, out_json, out_png, log) -> dict:
    """Run every pilot, write the choice and its figure; return the calibration record."""
    sampler = run["sampler"]
    dtype = jnp.float64 if sampler["x64"] else jnp.float32
    meta = load_meta(paths["meta"])
    if meta.get("status", "ok") != "ok":
        # Nothing to calibrate on: record it; the run then fails naming the target's error.
        steps = sampler["calibrate"]["step_sizes"]
        pilots = [
            {"step_size": s, "passed": False, "reasons": [f"target not built: {meta['error']}"]}
            for s in steps
        ]
        chosen = choose(pilots)
        result = {
            "calibration_id": calibration_id,
            "target_id": run["target_id"],
            "chosen": chosen,
            "pilots": pilots,
        }
        plot_calibration(pilots, chosen, out_png, f"calibration {calibration_id}: target not built")
        write_json(out_json, result)
        return result
    x, y, params, apply = load_target(paths["data"], paths["params"], meta, dtype)
    pilot = pilot_runner(sampler, x, y, params, apply)
    pilots = []
    for step in sorted(sampler["calibrate"]["step_sizes"]):
        record = pilot(step)
        log.info(
            "calibration %s: step %.3g %s (MALA %.3f, llc %.4g, R-hat %.3f) %s",
            calibration_id,
            step,
            "passed" if record["passed"] else "failed",
            record.get("mala_acceptance", math.nan),
            record.get("llc_mean", math.nan),
            record.get("r_hat", math.nan),
            "; ".join(record["reasons"]),
        )
        pilots.append(record)
    chosen = choose(pilots)
    result = {
        "calibration_id": calibration_id,
        "target_id": run["target_id"],
        "chosen": chosen,
        "pilots": pilots,
    }
    plot_calibration(
        pilots,
        chosen,
        out_png,
        f"calibration {calibration_id} (target {run['target_id']}): step {chosen['step_size']:.3g}"
        + ("" if chosen["passed"] else " (no step passed)"),
    )
    write_json(out_json, result)
    return result


if "snakemake" in globals():
    _log = setup_logging(snakemake.log[0])
    calibrate(
        snakemake.wildcards.calibration_id,
        snakemake.params.run,
        {key: getattr(snakemake.input, key) for key in ("data", "params", "meta")},
        snakemake.output.json,
        snakemake.output.png,
        _log,
    )
