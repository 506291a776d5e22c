"""Benchmark of the llc workflow's samplers against bare JIT-compiled BlackJAX loops of the same
model, measured in the same run, and the per-job start-up overhead of Snakemake plus JAX.

    .venv/bin/python bench/llc.py [--n 1000] [--chains 4] [--rounds 5] [--min-seconds 1.0]

Each sampler (the workflow's SGLD and HMC, BlackJAX's bare SGLD and HMC loops) is compiled once.
The number of draws is then doubled (recompiling each time) until one warm call takes at least
--min-seconds, so the timings are sampling, not compilation or dispatch. Each round then times
one call of the workflow's sampler and one of the bare loop back to back; the headline is the
median over rounds of workflow rate / bare rate, with the lowest and highest round beside it
(a rate is gradient evaluations per second of a positive wall time, so it is never negative).
Compile times are printed separately. A warning is printed when n is below the number of
parameters (the posterior is then dominated by the localization, not by the data).
"""

import argparse
import json
import statistics
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
from llc.models import flat_loss, model_functions  # noqa: E402
from llc.samplers import hmc_adapt, hmc_logdensity, hmc_sampler, sgld_sampler  # noqa: E402
from llc.sweep import default_nbeta, resolve_target  # noqa: E402


def fixed_target(n, widths):
    _, cfg = resolve_target({"family": "rrr", "widths": widths, "n": n, "seed": 0}, 0)
    x, y, _ = make_data(cfg, jax.random.key(0))
    params, apply = model_functions(cfg, jax.random.key(1), scale=0.5)
    params, _ = train_adam(apply, params, x, y, cfg["training"])
    w_star, _ = ravel_pytree(params)
    _, loss_fn = flat_loss(apply, params)
    return loss_fn, w_star, (x, y), cfg


def seconds_of(call) -> float:
    start = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - start


def long_enough(build, draws: int, min_seconds: float):
    """(call, draws, compile seconds): ``build(draws)`` compiled, draws doubled until a warm call
    lasts ``min_seconds``."""
    while True:
        call = build(draws)
        compile_s = seconds_of(call)  # first call: trace + compile + run
        if seconds_of(call) >= min_seconds:
            return call, draws, compile_s
        draws *= 2


def workflow_sgld(loss_fn, w_star, data, nbeta, gamma, eps, chains):
    def build(draws):
        sampler = sgld_sampler(loss_fn, w_star, data, nbeta=nbeta, gamma=gamma, chains=chains, draws=draws)
        return lambda: sampler(jax.random.key(4), eps)

    return build


def bare_sgld(loss_fn, w_star, data, nbeta, gamma, eps, chains):
    x, y = data

    def grad_estimator(w, _batch):
        return -(nbeta * jax.grad(loss_fn)(w, x, y) + gamma * (w - w_star))

    sgld = blackjax.sgld(grad_estimator)

    def build(draws):
        def chain(key):
            def step(w, key):
                w = sgld.step(key, w, None, eps / 2)
                return w, w[0]

            return jax.lax.scan(step, w_star, jax.random.split(key, draws))[1]

        run = jax.jit(jax.vmap(chain))
        keys = jax.random.split(jax.random.key(1), chains)
        return lambda: run(keys)

    return build


def hmc_builders(loss_fn, w_star, data, nbeta, gamma, chains, steps):
    logdensity = hmc_logdensity(loss_fn, w_star, data, nbeta, gamma)
    params = hmc_adapt(
        jax.random.key(2), logdensity, w_star, warmup=200, num_integration_steps=steps, target_acceptance=0.8
    )

    def workflow(draws):
        sampler = hmc_sampler(
            logdensity,
            w_star,
            params,
            nbeta=nbeta,
            gamma=gamma,
            chains=chains,
            draws=draws,
            num_integration_steps=steps,
            step_jitter=0.2,
        )
        return lambda: sampler(jax.random.key(5))

    hmc = blackjax.hmc(logdensity, **params)

    def bare(draws):
        def chain(key):
            def step(state, key):
                state, info = hmc.step(key, state)
                return state, info.acceptance_rate

            return jax.lax.scan(step, hmc.init(w_star), jax.random.split(key, draws))[1]

        run = jax.jit(jax.vmap(chain))
        keys = jax.random.split(jax.random.key(3), chains)
        return lambda: run(keys)

    return workflow, bare


def compare(name, build_workflow, build_bare, draws, grads_per_draw, chains, args):
    """Median ratio of back-to-back rounds, with the lowest and highest round."""
    workflow, wf_draws, wf_compile = long_enough(build_workflow, draws, args.min_seconds)
    bare, bare_draws, bare_compile = long_enough(build_bare, draws, args.min_seconds)
    rates = []
    for _ in range(args.rounds):
        wf = chains * wf_draws * grads_per_draw / seconds_of(workflow)
        bb = chains * bare_draws * grads_per_draw / seconds_of(bare)
        rates.append((wf, bb))
    ratios = [wf / bb for wf, bb in rates]
    return {
        "name": name,
        "workflow": statistics.median(r[0] for r in rates),
        "bare": statistics.median(r[1] for r in rates),
        "ratio": statistics.median(ratios),
        "low": min(ratios),
        "high": max(ratios),
        "draws": (wf_draws, bare_draws),
        "compile": (wf_compile, bare_compile),
    }


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
            "--",
            "llc_all",
        ]
        total = seconds_of(lambda: subprocess.run(cmd, cwd=tmp, check=True, capture_output=True))
        jobs = {
            p.parent.name: float(p.read_text().splitlines()[1].split("\t")[0])
            for p in Path(tmp).glob("benchmarks/llc/*/*.tsv")
        }
        sampling = json.loads(next(Path(tmp).glob("results/llc/runs/*/analysis.json")).read_text())[
            "wall_time_s"
        ]
    imports = seconds_of(
        lambda: subprocess.run(
            [str(REPO / ".venv/bin/python"), "-c", "import jax, blackjax, optax"], check=True
        )
    )
    return total, jobs, sampling, imports


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="data points of the fixed RRR target")
    parser.add_argument(
        "--widths", type=int, nargs=3, default=[5, 3, 5], help="RRR shape M H N (default 5 3 5)"
    )
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument(
        "--draws", type=int, default=2000, help="starting SGLD draws per chain (HMC: a tenth)"
    )
    parser.add_argument("--hmc-steps", type=int, default=16, help="leapfrog steps per HMC draw")
    parser.add_argument("--rounds", type=int, default=5, help="back-to-back timed rounds (median ratio)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="shortest warm call that counts")
    parser.add_argument("--no-jobs", action="store_true", help="skip the Snakemake per-job overhead part")
    args = parser.parse_args()
    print_startup(REPO / ".venv" / "bin")
    loss_fn, w_star, data, cfg = fixed_target(args.n, args.widths)
    nbeta, gamma, eps = default_nbeta(args.n), 1.0, 4e-4
    print(f"fixed target: rrr {cfg['widths']}, n={args.n}, d={w_star.size}, float64, {jax.devices()[0]}")
    if args.n < w_star.size:
        print(
            f"  warning: n = {args.n} is below the {w_star.size} parameters; the LLC is then set by the localization"
        )
    results = [
        compare(
            "sgld",
            workflow_sgld(loss_fn, w_star, data, nbeta, gamma, eps, args.chains),
            bare_sgld(loss_fn, w_star, data, nbeta, gamma, eps, args.chains),
            args.draws,
            1,
            args.chains,
            args,
        ),
        compare(
            "hmc",
            *hmc_builders(loss_fn, w_star, data, nbeta, gamma, args.chains, args.hmc_steps),
            max(10, args.draws // 10),
            args.hmc_steps,
            args.chains,
            args,
        ),
    ]
    print(f"\ngradient evaluations per second, compiled once, median of {args.rounds} back-to-back rounds")
    print(
        f"{'sampler':8s} {'workflow':>12s} {'bare blackjax':>14s} {'workflow/bare':>14s} {'(low-high)':>14s}  draws"
    )
    for r in results:
        print(
            f"{r['name']:8s} {r['workflow']:12.0f} {r['bare']:14.0f} {r['ratio']:14.2f} "
            f"{r['low']:6.2f}-{r['high']:<6.2f}  {r['draws'][0]}/{r['draws'][1]} per chain"
        )
    for r in results:
        print(
            f"first call incl. tracing + compile: {r['name']} workflow {r['compile'][0]:.2f} s, "
            f"bare {r['compile'][1]:.2f} s"
        )
    if args.no_jobs:
        return
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
