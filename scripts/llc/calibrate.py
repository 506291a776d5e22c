"""Opt-in calibration of SGLD (checkpoint ``llc_calibrate``), as devinterp users do by hand: short
pilot chains over a grid of step sizes (``calibrate.step_sizes``), and where asked of nβ
(``calibrate.nbetas``) and γ (``calibrate.gammas``), then the largest step whose diagnostics
pass. A pilot passes when its loss stays finite, its MALA acceptance reaches ``min_acceptance``
(devinterp's guidance: about 0.9), its R-hat is below ``max_r_hat``, and it has no loss excursion
and no disagreeing chain. When no pilot passes, the smallest step is used and the choice says so
(the gallery shows it).

nβ and γ move only when they must: the run's own (nβ, γ) are kept if any of their steps passes;
otherwise the smallest γ for which one passes (γ's pull towards w* biases the estimate down), then
the nβ nearest the run's. The step is then the largest that passes there.

The choice goes into the run's resolved config (``llc.sweep.calibrated_sampler``), so the run id
follows it; the evidence (every pilot's numbers and a figure) is kept beside it.
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


def grid(settings: dict, nbeta: float, gamma: float) -> list[tuple[float, float, float]]:
    """Every (step size, nβ, γ) to try; nβ and γ are the run's own (``nbeta``, ``gamma``) unless
    the calibration ``settings`` ask for a grid of them."""
    nbetas = settings.get("nbetas") or [nbeta]
    gammas = settings.get("gammas") or [gamma]
    return [
        (float(step), float(nbeta), float(gamma))
        for nbeta in sorted(nbetas)
        for gamma in sorted(gammas)
        for step in sorted(settings["step_sizes"])
    ]


def pilot_runner(sampler: dict, x, y, params, apply):
    """``(step_size, nbeta, gamma) -> pilot record``: short SGLD chains, compiled once for the
    whole grid."""
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

    def pilot(step_size: float, nbeta: float, gamma: float) -> dict:
        key = jax.random.key(sampler["seed"])
        traces = sgld_traces(built, key, step_size, n, **shape, nbeta=nbeta, gamma=gamma)
        record = {
            "step_size": step_size,
            "nbeta": nbeta,
            "gamma": gamma,
            "finite": bool(np.all(np.isfinite(traces["loss"]))),
        }
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


def choose(pilots: list[dict], nbeta: float | None = None, gamma: float | None = None) -> dict:
    """The pilot to run with: the (nβ, γ) nearest the run's own for which some step passes, and
    there the largest passing step; when none passes, the smallest step at the run's own values
    (``passed`` says which). Returns its step size, nβ and γ.

    nβ and γ change what the chains sample (γ's pull towards w* biases the estimate down), the
    step size only how fast: so the run's own (nβ, γ) come first, then the smallest γ, then the
    nβ nearest the run's; only the step is pushed as far as the diagnostics allow.
    """

    def closeness(p):
        p_nbeta, p_gamma = p.get("nbeta", nbeta), p.get("gamma", gamma)
        nbeta_gap = abs(math.log(p_nbeta / nbeta)) if p_nbeta and nbeta else 0.0
        return (p_nbeta != nbeta or p_gamma != gamma, p_gamma or 0.0, nbeta_gap)

    passing = [p for p in pilots if p["passed"]]
    if passing:
        best = min(passing, key=lambda p: (*closeness(p), -p["step_size"]))
    else:
        best = min(pilots, key=lambda p: (*closeness(p), p["step_size"]))
    chosen = {key: best[key] for key in ("step_size", "nbeta", "gamma") if key in best}
    return {**chosen, "passed": bool(passing)}


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
            for s in sorted(steps)
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
    own = {"nbeta": resolved_nbeta(sampler, x.shape[0])[0], "gamma": float(sampler["gamma"])}
    pilots = []
    for step, nbeta, gamma in grid(sampler["calibrate"], **own):
        record = pilot(step, nbeta, gamma)
        log.info(
            "calibration %s: step %.3g, nβ %.4g, γ %.3g %s (MALA %.3f, llc %.4g, R-hat %.3f) %s",
            calibration_id,
            step,
            nbeta,
            gamma,
            "passed" if record["passed"] else "failed",
            record.get("mala_acceptance", math.nan),
            record.get("llc_mean", math.nan),
            record.get("r_hat", math.nan),
            "; ".join(record["reasons"]),
        )
        pilots.append(record)
    chosen = choose(pilots, **own)
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
        f"calibration {calibration_id} (target {run['target_id']}): step {chosen['step_size']:.3g}, "
        f"nβ {chosen['nbeta']:.4g}, γ {chosen['gamma']:.3g}"
        + ("" if chosen["passed"] else " (no pilot passed)"),
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
