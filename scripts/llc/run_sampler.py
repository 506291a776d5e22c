"""Stage B: sample one target with one sampler; write the loss traces and analysis.json.

Run by rule ``llc_run_sampler``. The JAX platform and x64 are set before JAX makes any
array: both are process-wide, and one Snakemake job is one process.
"""

import platform
import time

if "snakemake" in globals():
    from llc.jax_env import configure_jax

    configure_jax(snakemake.resources.get("jax_platforms", "cpu"), snakemake.params.run["sampler"]["x64"])

import json

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from common import atomic_path, setup_logging, write_json
from jax.flatten_util import ravel_pytree

from llc.models import flat_loss, params_from_npz
from llc.samplers import linear_exact_llc, llc_statistics, run_hmc, run_sgld
from llc.sweep import default_nbeta


class SamplerDiverged(RuntimeError):
    """The chains left every finite value; the message names the run, target and sampler."""


def load_target(data_path, params_path, meta_path, dtype):
    """(x, y, params, meta) of a built target, arrays cast to ``dtype``."""
    with np.load(data_path) as data:
        x, y = jnp.asarray(data["x"], dtype=dtype), jnp.asarray(data["y"], dtype=dtype)
    with np.load(params_path) as npz:
        params = params_from_npz(npz, dtype)
    with open(meta_path) as handle:
        meta = json.load(handle)
    return x, y, params, meta


def sample_target(run_id: str, run: dict, x, y, params, meta: dict, log) -> tuple[dict, dict]:
    """Run the sampler of ``run`` on a loaded target; return (traces, analysis)."""
    sampler = run["sampler"]
    cfg = meta["config"]
    n = x.shape[0]
    nbeta = sampler["nbeta"] if sampler["nbeta"] is not None else default_nbeta(n)
    w_star, _ = ravel_pytree(params)
    _, loss_fn = flat_loss(cfg, params)
    # L0 in the sampler's own precision, not the float the target was trained in.
    l0 = float(loss_fn(w_star, x, y))
    key = jax.random.key(sampler["seed"])
    common = {
        "nbeta": nbeta,
        "gamma": sampler["gamma"],
        "chains": sampler["chains"],
        "draws": sampler["draws"],
    }
    label = (
        f"run {run_id} (target {run['target_id']} '{run['target_name']}', sampler '{run['sampler_name']}')"
    )
    log.info(
        "%s: n=%d, d=%d, nβ=%.4g, γ=%g, L0=%.6g, dtype=%s",
        label,
        n,
        w_star.size,
        nbeta,
        sampler["gamma"],
        l0,
        x.dtype,
    )
    start = time.perf_counter()
    if sampler["kind"] == "sgld":
        traces = run_sgld(
            key,
            loss_fn,
            w_star,
            (x, y),
            step_size=sampler["step_size"],
            batch_size=sampler["batch_size"],
            **common,
        )
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
    if not np.all(np.isfinite(loss)):
        first = int(np.argmax(~np.isfinite(loss).all(axis=0)))
        raise SamplerDiverged(
            f"{label}: the loss became non-finite at draw {first} of {loss.shape[1]}; "
            "the chains diverged (lower the step size, or raise gamma)"
        )
    analysis = {
        "run_id": run_id,
        "target_id": run["target_id"],
        "target_name": run["target_name"],
        "sampler_name": run["sampler_name"],
        "sampler": sampler,
        "n": int(n),
        "num_params": int(w_star.size),
        "nbeta": float(nbeta),
        "L0": l0,
        "dtype": str(x.dtype),
        **llc_statistics(loss, l0, nbeta, sampler["burnin"]),
        "grad_evals": int(traces["grad_evals"]),
        "full_grad_equivalents": float(traces["full_grad_equivalents"]),
        "wall_time_s": wall,
        "grad_evals_per_s": traces["grad_evals"] / wall,
        "llc_truth": meta["truth"]["lambda"],
        "llc_truth_source": meta["truth"]["source"],
        "llc_truth_finite_n": None,
        "host": platform.node(),
        "backend": jax.default_backend(),
        "versions": {"jax": jax.__version__, "blackjax": blackjax.__version__},
    }
    if cfg["family"] == "linear":
        analysis["llc_truth_finite_n"] = linear_exact_llc(x, cfg["widths"][-1], nbeta, sampler["gamma"])
    kept = slice(sampler["burnin"], None)
    if sampler["kind"] == "hmc":
        analysis["acceptance_rate"] = float(traces["acceptance"][:, kept].mean())
        analysis["divergences"] = int(traces["divergent"][:, kept].sum())
        analysis["hmc_step_size"] = traces["step_size"]
    elif sampler["batch_size"] is None:
        analysis["mala_acceptance"] = float(traces["mala_acceptance"][:, kept].mean())
    reference = analysis["llc_truth_finite_n"] or analysis["llc_truth"]
    analysis["relative_error"] = (analysis["llc_mean"] - reference) / reference if reference else None
    log.info(
        "%s: llc = %.4g ± %.2g (truth %s), R-hat %.3f, ESS %.0f, %.1f s",
        label,
        analysis["llc_mean"],
        analysis["llc_sem"],
        reference,
        analysis["r_hat"],
        analysis["ess"],
        wall,
    )
    return traces, analysis


def write_outputs(traces: dict, analysis: dict, out_traces, out_analysis) -> None:
    """Traces first, analysis last: analysis.json existing means the run is complete."""
    arrays = {k: v for k, v in traces.items() if isinstance(v, np.ndarray)}
    with atomic_path(out_traces, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, burnin=analysis["sampler"]["burnin"], L0=analysis["L0"], nbeta=analysis["nbeta"], **arrays
        )
    write_json(out_analysis, analysis)


if "snakemake" in globals():
    _log = setup_logging(snakemake.log[0])
    _run = snakemake.params.run
    _dtype = jnp.float64 if _run["sampler"]["x64"] else jnp.float32
    try:
        _x, _y, _params, _meta = load_target(
            snakemake.input.data, snakemake.input.params, snakemake.input.meta, _dtype
        )
        _traces, _analysis = sample_target(snakemake.wildcards.run_id, _run, _x, _y, _params, _meta, _log)
    except SamplerDiverged as err:
        _log.error("%s", err)  # into the job's log file, which show-failed-logs prints
        raise
    write_outputs(_traces, _analysis, snakemake.output.traces, snakemake.output.analysis)
