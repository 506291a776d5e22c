# Workflow llc: local learning coefficient sweeps (replaces Lambda-Hat's Parsl flow).
#   Stage A  llc_build_target  results/llc/targets/<target_id>/{data.npz,params.npz,meta.json}
#   Stage B  llc_run_sampler   results/llc/runs/<run_id>/{traces.npz,analysis.json}
#   Stage C  llc_aggregate     results/llc/llc_runs.{parquet,tsv}
#   opt-in   llc_promote       results/llc/gallery/ (`--config llc_promote=true`, or the target rule)
# Ids are content hashes computed from the config at parse time (pure Python, no JAX).
import functools

from llc.sweep import SweepError, expand_sweep

LLC = config["llc"]
LLC_RESULTS = "results/llc"
LLC_TARGET_DIR = f"{LLC_RESULTS}/targets/{{target_id}}"
LLC_RUN_DIR = f"{LLC_RESULTS}/runs/{{run_id}}"


@functools.cache
def llc_sweep():
    """(targets, runs) keyed by content-hash id; a bad entry stops the parse with its index."""
    try:
        return expand_sweep(LLC)
    except SweepError as err:
        raise WorkflowError(f"invalid llc sweep: {err}") from None


def llc_lookup(kind, key):
    table = llc_sweep()[0 if kind == "target" else 1]
    if key not in table:
        raise WorkflowError(f"llc: no {kind} with id {key} in the configured sweep")
    return table[key]


def llc_run_inputs(wildcards):
    target_id = llc_lookup("run", wildcards.run_id)["target_id"]
    folder = LLC_TARGET_DIR.format(target_id=target_id)
    return {
        name: f"{folder}/{name}.{ext}"
        for name, ext in [("data", "npz"), ("params", "npz"), ("meta", "json")]
    }


def llc_run_ids(target_id=None):
    return [
        rid
        for rid, run in llc_sweep()[1].items()
        if target_id in (None, run["target_id"])
    ]


def llc_targets():
    targets, runs = llc_sweep()
    if not runs:
        raise WorkflowError(
            "config key 'llc': the sweep needs at least one target and one sampler"
        )
    final = [
        f"{LLC_RESULTS}/llc_runs.parquet",
        f"{LLC_RESULTS}/llc_runs.tsv",
        f"{LLC_RESULTS}/SUMMARY.txt",
    ]
    if config.get("llc_promote", False):
        final.append(f"{LLC_RESULTS}/gallery/index.html")
    return final


WORKFLOW_TARGETS["llc"] = llc_targets


rule llc_all:
    input:
        lambda wildcards: llc_targets(),


rule llc_build_target:
    output:
        data=f"{LLC_TARGET_DIR}/data.npz",
        params=f"{LLC_TARGET_DIR}/params.npz",
        meta=f"{LLC_TARGET_DIR}/meta.json",
    log:
        "logs/llc/build_target/{target_id}.log",
    benchmark:
        "benchmarks/llc/build_target/{target_id}.tsv"
    wildcard_constraints:
        target_id="[0-9a-f]{12}",
    conda:
        "../envs/llc.yaml"
    resources:
        jax_platforms="cpu",
    params:
        target=lambda wildcards: llc_lookup("target", wildcards.target_id),
    script:
        "../scripts/llc/build_target.py"


rule llc_run_sampler:
    input:
        unpack(llc_run_inputs),
    output:
        traces=f"{LLC_RUN_DIR}/traces.npz",
        analysis=f"{LLC_RUN_DIR}/analysis.json",
    log:
        "logs/llc/run_sampler/{run_id}.log",
    benchmark:
        "benchmarks/llc/run_sampler/{run_id}.tsv"
    wildcard_constraints:
        run_id="[0-9a-f]{12}",
    conda:
        "../envs/llc.yaml"
    resources:
        # "cuda" (with a GPU partition and gres) comes from profiles/slurm where a site has GPUs.
        jax_platforms="cpu",
    params:
        run=lambda wildcards: llc_lookup("run", wildcards.run_id),
    script:
        "../scripts/llc/run_sampler.py"


rule llc_aggregate:
    input:
        analyses=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/analysis.json", run_id=llc_run_ids()
        ),
        metas=lambda wildcards: expand(
            f"{LLC_TARGET_DIR}/meta.json", target_id=llc_sweep()[0]
        ),
    output:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
        tsv=report(
            f"{LLC_RESULTS}/llc_runs.tsv",
            category="llc",
            labels={"table": "one row per run: config, LLC estimate, truth, error"},
        ),
        summary=f"{LLC_RESULTS}/SUMMARY.txt",
    log:
        "logs/llc/aggregate.log",
    localrule: True
    conda:
        "../envs/llc.yaml"
    script:
        "../scripts/llc/aggregate.py"


rule llc_plot_traces:
    input:
        analyses=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/analysis.json", run_id=llc_run_ids(wildcards.target_id)
        ),
        traces=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/traces.npz", run_id=llc_run_ids(wildcards.target_id)
        ),
    output:
        png=report(
            f"{LLC_RESULTS}/gallery/traces_{{target_id}}.png",
            category="llc",
            subcategory="traces",
            labels={"target": "{target_id}"},
        ),
    log:
        "logs/llc/plot_traces/{target_id}.log",
    wildcard_constraints:
        target_id="[0-9a-f]{12}",
    localrule: True
    conda:
        "../envs/llc.yaml"
    script:
        "../scripts/llc/plots.py"


rule llc_plot_by_sampler:
    input:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
    output:
        png=report(
            f"{LLC_RESULTS}/gallery/llc_by_sampler.png",
            category="llc",
            labels={"figure": "LLC by sampler and target"},
        ),
    log:
        "logs/llc/plot_by_sampler.log",
    localrule: True
    conda:
        "../envs/llc.yaml"
    script:
        "../scripts/llc/plots.py"


rule llc_gallery:
    input:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
        by_sampler=f"{LLC_RESULTS}/gallery/llc_by_sampler.png",
        traces=lambda wildcards: expand(
            f"{LLC_RESULTS}/gallery/traces_{{target_id}}.png", target_id=llc_sweep()[0]
        ),
    output:
        html=f"{LLC_RESULTS}/gallery/index.html",
    log:
        "logs/llc/gallery.log",
    localrule: True
    conda:
        "../envs/llc.yaml"
    params:
        target_ids=lambda wildcards: list(llc_sweep()[0]),
    script:
        "../scripts/llc/plots.py"


rule llc_promote:
    input:
        f"{LLC_RESULTS}/gallery/index.html",


WORKFLOW_VERSIONS["llc"] = {
    "libraries": [
        "jax",
        "jaxlib",
        "blackjax",
        "optax",
        "numpy",
        "scipy",
        "pandas",
        "pyarrow",
        "matplotlib",
    ],
    "tools": {},
}
