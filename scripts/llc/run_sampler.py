"""Stage B: sample one target with one sampler; write the loss traces and analysis.json.

Run by rule ``llc_run_sampler``. The JAX platform and x64 are set before JAX makes any
array: both are process-wide, and one Snakemake job is one process.

A run that fails (the chains diverge, the target could not be built, anything the sampler
raises) still writes analysis.json, with ``status: failed`` and the error, so that the other
runs' table is written; ``llc_check`` then fails the workflow naming it. The job receives the
target id and the sampler config only, never display names (renaming reruns nothing).
"""

import platform
import time

if "snakemake" in globals():
    from llc.jax_env import configure_jax

    configure_jax(snakemake.resources.get("jax_platforms", "cpu"), snakemake.params.run["sampler"]["x64"])

import json
import traceback

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from common import atomic_path, setup_logging, write_json
from jax.flatten_util import ravel_pytree

from llc.flags import run_flags
from llc.models import flat_loss, model_functions, params_from_npz
from llc.samplers import linear_exact_llc, llc_statistics, run_hmc, run_sgld
from llc.sweep import default_eval_every, default_nbeta


class SamplerDiverged(RuntimeError):
    """The chains left every finite value; the message names the run, target and sampler kind."""


class TargetFailed(RuntimeError):
    """The run's target could not be built; the message carries the target's error."""


def load_meta(meta_path) -> dict:
    with open(meta_path) as handle:
        return json.load(handle)


def load_target(data_path, params_path, meta: dict, dtype):
    """(x, y, params, apply) of a built target, arrays cast to ``dtype``."""
    if meta.get("status", "ok") != "ok":
        raise TargetFailed(f"target {meta['target_id']} was not built: {meta.get('error')}")
    with np.load(data_path) as data:
        x, y = jnp.asarray(data["x"], dtype=dtype), jnp.asarray(data["y"], dtype=dtype)
    template, apply = model_functions(meta["config"], jax.random.key(0))
    with np.load(params_path) as npz:
        params = params_from_npz(npz, template, dtype)
    return x, y, params, apply


def resolved_nbeta(sampler: dict, n: int) -> tuple[float, str]:
    """(nβ, where it came from): the config's value, or the default for the batch size."""
    if sampler["nbeta"] is not None:
        return float(sampler["nbeta"]), "config"
    batch = sampler.get("batch_size")
    return default_nbeta(n, batch), "n/log n" if batch is None else "batch_size/log(batch_size)"


def sample_target(run_id: str, run: dict, x, y, params, apply, meta: dict, log) -> tuple[dict, dict]:
    """Run the sampler of ``run`` on a loaded target; return (traces, analysis)."""
    sampler = run["sampler"]
    cfg = meta["config"]
    n = x.shape[0]
    nbeta, nbeta_source = resolved_nbeta(sampler, n)
    w_star, _ = ravel_pytree(params)
    _, loss_fn = flat_loss(apply, params)
    # L0 in the sampler's own precision, not the float the target was trained in.
    l0 = float(loss_fn(w_star, x, y))
    key = jax.random.key(sampler["seed"])
    common = {
        "nbeta": nbeta,
        "gamma": sampler["gamma"],
        "chains": sampler["chains"],
        "draws": sampler["draws"],
    }
    label = f"run {run_id} (target {run['target_id']}, {sampler['kind']})"
    log.info(
        "%s: n=%d, d=%d, nβ=%.4g (%s), γ=%g, L0=%.6g, dtype=%s",
        label,
        n,
        w_star.size,
        nbeta,
        nbeta_source,
        sampler["gamma"],
        l0,
        x.dtype,
    )
    if n < w_star.size:
        log.warning("%s: n = %d is below the %d parameters", label, n, w_star.size)
    start = time.perf_counter()
    burnin = sampler["burnin"]
    if sampler["kind"] == "sgld":
        batch = sampler["batch_size"]
        eval_every = sampler["eval_every"] or default_eval_every(n, batch)
        traces = run_sgld(
            key,
            loss_fn,
            w_star,
            (x, y),
            step_size=sampler["step_size"],
            batch_size=batch,
            eval_every=eval_every,
            **common,
        )
        burnin //= traces["eval_every"]  # burn-in is in steps; the trace holds evaluations
    else:
        traces = run_hmc(
            key,
            loss_fn,
            w_star,
            (x, y),
            warmup=sampler["warmup"],
            num_integration_steps=sampler["num_integration_steps"],
            target_acceptance=sampler["target_acceptance"],
            step_jitter=sampler["step_jitter"],
            **common,
        )
    wall = time.perf_counter() - start
    loss = traces["loss"]
    traces["burnin"] = burnin
    if not np.all(np.isfinite(loss)):
        first = int(np.argmax(~np.isfinite(loss).all(axis=0)))
        raise SamplerDiverged(
            f"{label}: the loss became non-finite at recorded draw {first} of {loss.shape[1]}; "
            "the chains diverged (lower the step size, or raise gamma)"
        )
    truth = meta["truth"]
    analysis = {
        "run_id": run_id,
        "target_id": run["target_id"],
        "status": "ok",
        "error": None,
        "sampler": sampler,
        "n": int(n),
        "num_params": int(w_star.size),
        "nbeta": float(nbeta),
        "nbeta_source": nbeta_source,
        "L0": l0,
        "dtype": str(x.dtype),
        "recorded_draws": int(loss.shape[1]),
        "recorded_burnin": int(burnin),
        **llc_statistics(loss, l0, nbeta, burnin),
        "grad_evals": int(traces["grad_evals"]),
        "full_grad_equivalents": float(traces["full_grad_equivalents"]),
        "wall_time_s": wall,
        "grad_evals_per_s": traces["grad_evals"] / wall,
        "llc_truth": truth["lambda"],
        "llc_truth_multiplicity": truth.get("multiplicity"),
        "llc_truth_source": truth["source"],
        "llc_truth_finite_n": None,
        "host": platform.node(),
        "backend": jax.default_backend(),
        "versions": {"jax": jax.__version__, "blackjax": blackjax.__version__},
    }
    if cfg["family"] == "linear":
        analysis["llc_truth_finite_n"] = linear_exact_llc(x, cfg["widths"][-1], nbeta, sampler["gamma"])
    kept = slice(burnin, None)
    if sampler["kind"] == "hmc":
        analysis["acceptance_rate"] = float(traces["acceptance"][:, kept].mean())
        analysis["divergences"] = int(traces["divergent"][:, kept].sum())
        analysis["hmc_step_size"] = traces["step_size"]
    else:
        analysis["mala_acceptance"] = float(traces["mala_acceptance"][:, kept].mean())
        analysis["eval_every"] = int(traces["eval_every"])
    reference = analysis["llc_truth_finite_n"] or analysis["llc_truth"]
    analysis["relative_error"] = (analysis["llc_mean"] - reference) / reference if reference else None
    log.info(
        "%s: llc = %.4g ± %.2g (truth %s), per chain %s, R-hat %.3f, ESS %.0f, %.1f s",
        label,
        analysis["llc_mean"],
        analysis["llc_sem"],
        reference,
        ", ".join(f"{v:.3g}" for v in analysis["llc_per_chain"]),
        analysis["r_hat"],
        analysis["ess"],
        wall,
    )
    for flag, reason in run_flags(analysis).items():
        log.warning("%s: flag %s: %s", label, flag, reason)
    return traces, analysis


def failed_analysis(run_id: str, run: dict, error: str) -> dict:
    """analysis.json of a run that produced no estimate."""
    return {
        "run_id": run_id,
        "target_id": run["target_id"],
        "status": "failed",
        "error": error,
        "sampler": run["sampler"],
    }


def write_outputs(traces: dict, analysis: dict, out_traces, out_analysis) -> None:
    """Traces first, analysis last: analysis.json existing means the run is finished."""
    arrays = {k: v for k, v in traces.items() if isinstance(v, np.ndarray)}
    with atomic_path(out_traces, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            burnin=traces.get("burnin", 0),
            L0=analysis.get("L0", np.nan),
            nbeta=analysis.get("nbeta", np.nan),
            **arrays,
        )
    write_json(out_analysis, analysis)


def run_one(run_id: str, run: dict, paths: dict, out_traces, out_analysis, log) -> dict:
    """Load, sample, write; a failure is written as a failed analysis, not raised."""
    dtype = jnp.float64 if run["sampler"]["x64"] else jnp.float32
    try:
        meta = load_meta(paths["meta"])
        x, y, params, apply = load_target(paths["data"], paths["params"], meta, dtype)
        traces, analysis = sample_target(run_id, run, x, y, params, apply, meta, log)
    except Exception as err:  # noqa: BLE001 - one failed run must not block the table of the others
        log.error("run %s (target %s) failed:\n%s", run_id, run["target_id"], traceback.format_exc())
        message = (
            str(err) if isinstance(err, SamplerDiverged | TargetFailed) else f"{type(err).__name__}: {err}"
        )
        traces, analysis = {}, failed_analysis(run_id, run, message)
    write_outputs(traces, analysis, out_traces, out_analysis)
    return analysis


if "snakemake" in globals():
    _log = setup_logging(snakemake.log[0])
    run_one(
        snakemake.wildcards.run_id,
        snakemake.params.run,
        {key: getattr(snakemake.input, key) for key in ("data", "params", "meta")},
        snakemake.output.traces,
        snakemake.output.analysis,
        _log,
    )
