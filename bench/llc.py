"""Benchmark of the llc workflow: gradient evaluations per second of the workflow's SGLD and
HMC against a bare JIT-compiled BlackJAX loop of the same model in the same run, and the
per-job start-up overhead of Snakemake plus JAX.

    .venv/bin/python bench/llc.py [--n 1000] [--draws 4000] [--chains 4]

The workflow's samplers build and compile their loop inside each call (as a job does once),
so their steady rate is taken from two calls of D and 2D draws: the difference is D draws of
pure sampling. The bare loops are compiled ahead of time and timed alone.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from startup import print_startup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import blackjax  # noqa: E402
import yaml  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402
from llc.build_target import make_data, train_adam  # noqa: E402
from llc.models import flat_loss  # noqa: E402
from llc.samplers import hmc_logdensity, run_hmc, run_sgld  # noqa: E402
from llc.sweep import default_nbeta, resolve_target  # noqa: E402


def fixed_target(n):
    _, cfg = resolve_target({"family": "rrr", "widths": [5, 3, 5], "n": n, "seed": 0}, 0)
    x, y, _ = make_data(cfg, jax.random.key(0))
    params, _ = train_adam(cfg, x, y, jax.random.key(1))
    w_star, _ = ravel_pytree(params)
    _, loss_fn = flat_loss(cfg, params)
    return loss_fn, w_star, (x, y), cfg


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def workflow_rate(call, draws):
    """Gradient evaluations per second of D draws, and the first call's total seconds."""
    first, t_short = timed(lambda: call(draws))
    second, t_long = timed(lambda: call(2 * draws))
    return (second["grad_evals"] - first["grad_evals"]) / (t_long - t_short), t_short


def bare_sgld_rate(loss_fn, w_star, data, nbeta, gamma, eps, chains, draws):
    x, y = data

    def grad_estimator(w, _batch):
        return -(nbeta * jax.grad(loss_fn)(w, x, y) + gamma * (w - w_star))

    sgld = blackjax.sgld(grad_estimator)

    def chain(key):
        def step(w, key):
            w = sgld.step(key, w, None, eps / 2)
            return w, w[0]

        return jax.lax.scan(step, w_star, jax.random.split(key, draws))[1]

    run = jax.jit(jax.vmap(chain)).lower(jax.random.split(jax.random.key(0), chains)).compile()
    out, seconds = timed(lambda: run(jax.random.split(jax.random.key(1), chains)).block_until_ready())
    return chains * draws / seconds


def bare_hmc_rate(loss_fn, w_star, data, nbeta, gamma, chains, draws, steps):
    logdensity = hmc_logdensity(loss_fn, w_star, data, nbeta, gamma)
    (_, params), _ = blackjax.window_adaptation(blackjax.hmc, logdensity, num_integration_steps=steps).run(
        jax.random.key(2), w_star, num_steps=200
    )
    hmc = blackjax.hmc(logdensity, **params)

    def chain(key):
        def step(state, key):
            state, info = hmc.step(key, state)
            return state, info.acceptance_rate

        return jax.lax.scan(step, hmc.init(w_star), jax.random.split(key, draws))[1]

    run = jax.jit(jax.vmap(chain)).lower(jax.random.split(jax.random.key(0), chains)).compile()
    _, seconds = timed(lambda: run(jax.random.split(jax.random.key(3), chains)).block_until_ready())
    return chains * draws * steps / seconds


def job_overhead():
    """Wall seconds of one tiny build + one tiny sampler run through Snakemake, split into parts."""
    section = {
        "enabled": True,
        "targets": [{"family": "linear", "widths": [3, 1], "n": 200, "seed": 0}],
        "samplers": [{"kind": "sgld", "draws": 200, "burnin": 50, "chains": 2, "step_size": 1e-3}],
    }
    config = {name: {"enabled": False} for name in ["af3", "rnaseq", "trendy", "dali"]} | {"llc": section}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.yaml").write_text(yaml.safe_dump(config))
        cmd = [
            str(REPO / ".venv/bin/snakemake"),
            "--snakefile",
            str(REPO / "Snakefile"),
            "--profile",
            str(REPO / "profiles/local"),
            "--configfile",
            "bench.yaml",
            "--cores",
            "1",
            "llc_all",
        ]
        _, total = timed(lambda: subprocess.run(cmd, cwd=tmp, check=True, capture_output=True))
        jobs = {
            p.parent.name: float(p.read_text().splitlines()[1].split("\t")[0])
            for p in Path(tmp).glob("benchmarks/llc/*/*.tsv")
        }
        sampling = json.loads(next(Path(tmp).glob("results/llc/runs/*/analysis.json")).read_text())[
            "wall_time_s"
        ]
    _, imports = timed(
        lambda: subprocess.run(
            [str(REPO / ".venv/bin/python"), "-c", "import jax, blackjax, optax"], check=True
        )
    )
    return total, jobs, sampling, imports


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="data points of the fixed RRR target")
    parser.add_argument("--draws", type=int, default=4000, help="SGLD draws per chain (HMC uses a quarter)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--hmc-steps", type=int, default=16, help="leapfrog steps per HMC draw")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")
    loss_fn, w_star, data, cfg = fixed_target(args.n)
    nbeta, gamma, eps = default_nbeta(args.n), 1.0, 4e-4
    print(f"fixed target: rrr {cfg['widths']}, n={args.n}, d={w_star.size}, float64, {jax.devices()[0]}")

    sgld_bare = bare_sgld_rate(loss_fn, w_star, data, nbeta, gamma, eps, args.chains, args.draws)
    sgld_wf, sgld_first = workflow_rate(
        lambda d: run_sgld(
            jax.random.key(4),
            loss_fn,
            w_star,
            data,
            nbeta=nbeta,
            gamma=gamma,
            step_size=eps,
            chains=args.chains,
            draws=d,
        ),
        args.draws,
    )
    hmc_draws = args.draws // 4
    hmc_bare = bare_hmc_rate(loss_fn, w_star, data, nbeta, gamma, args.chains, hmc_draws, args.hmc_steps)
    hmc_wf, hmc_first = workflow_rate(
        lambda d: run_hmc(
            jax.random.key(5),
            loss_fn,
            w_star,
            data,
            nbeta=nbeta,
            gamma=gamma,
            chains=args.chains,
            draws=d,
            warmup=200,
            num_integration_steps=args.hmc_steps,
            target_acceptance=0.8,
            step_jitter=0.2,
        ),
        hmc_draws,
    )
    print("\ngradient evaluations per second (steady state, compile excluded)")
    print(f"{'sampler':8s} {'workflow':>12s} {'bare blackjax':>14s} {'workflow/bare':>14s}")
    for name, wf, bare in [("sgld", sgld_wf, sgld_bare), ("hmc", hmc_wf, hmc_bare)]:
        print(f"{name:8s} {wf:12.0f} {bare:14.0f} {wf / bare:14.2f}")
    print(
        f"\nworkflow first call incl. tracing + compile: sgld {sgld_first:.2f} s ({args.draws} draws), "
        f"hmc {hmc_first:.2f} s ({hmc_draws} draws + 200 warm-up)"
    )

    total, jobs, sampling, imports = job_overhead()
    print("\nper-job overhead (tiny linear target, 1 build + 1 SGLD run + local aggregate, --cores 1)")
    print(f"  whole snakemake invocation      {total:6.2f} s")
    for kind, seconds in sorted(jobs.items()):
        print(f"  job {kind:27s} {seconds:6.2f} s (Snakemake benchmark)")
    print(f"  sampling inside run_sampler     {sampling:6.2f} s (compile included)")
    print(f"  python -c 'import jax, blackjax, optax'  {imports:.2f} s")
    run = jobs.get("run_sampler", float("nan"))
    print(f"  => start-up overhead of a sampler job: {run - sampling:.2f} s beyond its sampling")


if __name__ == "__main__":
    main()
