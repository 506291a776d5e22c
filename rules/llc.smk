# Workflow llc: local learning coefficient sweeps (replaces Lambda-Hat's Parsl flow).
#   Stage A  llc_build_target  results/llc/targets/<target_id>/{data.npz,params.npz,meta.json}
#   opt-in   llc_calibrate     results/llc/calibration/<calibration_id>/{calibration.json,.png}
#   Stage B  llc_run_sampler   results/llc/runs/<run_id>/{traces.npz,analysis.json}
#   Stage C  llc_aggregate     results/llc/llc_runs.{parquet,tsv}, SUMMARY.txt
#   check    llc_check         results/llc/llc_check.txt (fails naming failed runs)
#   opt-in   llc_promote       results/llc/gallery/ (`llc.gallery: true`, `--config llc_promote=true`)
# Ids are content hashes computed from the config at parse time (pure Python, no JAX). Jobs
# receive configs without display names: names are labels, used by the aggregate and figures.
import functools
import json

from llc.sweep import (
    SweepError,
    calibrated_sampler,
    expand_sweep,
    job_spec,
    run_id_of,
)

LLC = config["llc"]
LLC_RESULTS = "results/llc"
LLC_TARGET_DIR = f"{LLC_RESULTS}/targets/{{target_id}}"
LLC_RUN_DIR = f"{LLC_RESULTS}/runs/{{run_id}}"
LLC_CAL_DIR = f"{LLC_RESULTS}/calibration/{{calibration_id}}"


@functools.cache
def llc_sweep():
    """(targets, runs, calibrations) keyed by content-hash id; a bad entry stops the parse."""
    try:
        return expand_sweep(LLC)
    except SweepError as err:
        raise WorkflowError(f"invalid llc sweep: {err}") from None


def llc_calibrated_runs():
    """Runs whose step size (nβ, γ) a finished calibration chose (read from its calibration.json)."""
    runs = {}
    for cal_id, cal in llc_sweep()[2].items():
        path = Path(LLC_CAL_DIR.format(calibration_id=cal_id)) / "calibration.json"
        if not path.exists():
            continue
        chosen = json.loads(path.read_text())["chosen"]
        sampler = calibrated_sampler(cal["sampler"], chosen)
        run_id = run_id_of(cal["target_id"], sampler)
        runs[run_id] = {**cal, "sampler": sampler, "calibration_id": cal_id}
    return runs


def llc_lookup(kind, key):
    targets, runs, calibrations = llc_sweep()
    table = {"target": targets, "calibration": calibrations}.get(kind)
    if kind == "run":
        table = {**runs, **llc_calibrated_runs()}
    if key not in table:
        raise WorkflowError(f"llc: no {kind} with id {key} in the configured sweep")
    return table[key]


def llc_target_files(target_id):
    folder = LLC_TARGET_DIR.format(target_id=target_id)
    return {
        name: f"{folder}/{name}.{ext}"
        for name, ext in [("data", "npz"), ("params", "npz"), ("meta", "json")]
    }


def llc_run_inputs(wildcards):
    return llc_target_files(llc_lookup("run", wildcards.run_id)["target_id"])


def llc_calibration_inputs(wildcards):
    return llc_target_files(
        llc_lookup("calibration", wildcards.calibration_id)["target_id"]
    )


def llc_build_inputs(wildcards):
    """A custom target's dataset, given parameters and model source: editing one rebuilds it."""
    cfg = llc_lookup("target", wildcards.target_id)["config"]
    if cfg["family"] != "custom":
        return {}
    files = {"dataset": cfg["data"]}
    if cfg["params"]:
        files["given_params"] = cfg["params"]
    source_stem = Path(cfg["model_dir"], *cfg["model"].split(":")[0].split("."))
    for source in (source_stem.with_suffix(".py"), source_stem / "__init__.py"):
        if source.exists():
            files["model_source"] = str(source)
    return files


def llc_calibration_ids(target_id=None):
    return [
        cal_id
        for cal_id, cal in llc_sweep()[2].items()
        if target_id in (None, cal["target_id"])
    ]


def llc_run_ids(target_id=None):
    """Ids of the runs with a fixed config (no calibration to wait for)."""
    return [
        rid
        for rid, run in llc_sweep()[1].items()
        if target_id in (None, run["target_id"])
    ]


def llc_calibrated_run_ids(target_id=None):
    """Ids of the calibrated runs, known once their calibration has finished (a checkpoint:
    kept apart from llc_run_ids so that the fixed runs need not wait for it)."""
    for cal_id in llc_calibration_ids(target_id):
        checkpoints.llc_calibrate.get(calibration_id=cal_id)
    return [
        rid
        for rid, run in llc_calibrated_runs().items()
        if target_id in (None, run["target_id"])
    ]


def llc_calibration_files(target_id=None, name="calibration.json"):
    return [
        f"{LLC_CAL_DIR.format(calibration_id=cal_id)}/{name}"
        for cal_id in llc_calibration_ids(target_id)
    ]


def llc_names():
    """Display names by id, from the current config (params of the aggregate and figures)."""
    targets, runs, _ = llc_sweep()
    labels = {rid: {"sampler_name": run["sampler_name"]} for rid, run in runs.items()}
    for rid, run in llc_calibrated_runs().items():
        labels[rid] = {
            "sampler_name": run["sampler_name"],
            "calibration_id": run["calibration_id"],
        }
    return {
        "targets": {tid: target["name"] for tid, target in targets.items()},
        "runs": labels,
    }


def llc_targets():
    targets, runs, calibrations = llc_sweep()
    if not runs and not calibrations:
        raise WorkflowError(
            "config key 'llc': the sweep needs at least one target and one sampler"
        )
    final = [
        f"{LLC_RESULTS}/llc_runs.parquet",
        f"{LLC_RESULTS}/llc_runs.tsv",
        f"{LLC_RESULTS}/SUMMARY.txt",
        f"{LLC_RESULTS}/llc_runs.status.json",
    ]
    if LLC.get("gallery", False) or config.get("llc_promote", False):
        final.append(f"{LLC_RESULTS}/gallery/index.html")
    # Last: fails naming the failed runs, after the table of every finished run is written.
    final.append(f"{LLC_RESULTS}/llc_check.txt")
    return final


WORKFLOW_TARGETS["llc"] = llc_targets


rule llc_all:
    input:
        lambda wildcards: llc_targets(),


rule llc_build_target:
    input:
        unpack(llc_build_inputs),
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
        target=lambda wildcards: llc_lookup("target", wildcards.target_id)["config"],
    script:
        "../scripts/llc/build_target.py"


checkpoint llc_calibrate:
    input:
        unpack(llc_calibration_inputs),
    output:
        json=f"{LLC_CAL_DIR}/calibration.json",
        png=f"{LLC_CAL_DIR}/calibration.png",
    log:
        "logs/llc/calibrate/{calibration_id}.log",
    benchmark:
        "benchmarks/llc/calibrate/{calibration_id}.tsv"
    wildcard_constraints:
        calibration_id="[0-9a-f]{12}",
    conda:
        "../envs/llc.yaml"
    resources:
        jax_platforms="cpu",
    params:
        run=lambda wildcards: job_spec(
            llc_lookup("calibration", wildcards.calibration_id)
        ),
    script:
        "../scripts/llc/calibrate.py"


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
        run=lambda wildcards: job_spec(llc_lookup("run", wildcards.run_id)),
    script:
        "../scripts/llc/run_sampler.py"


rule llc_aggregate:
    input:
        # every calibration as a plain input too, so that they all run at once
        calibrations=lambda wildcards: llc_calibration_files(),
        analyses=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/analysis.json", run_id=llc_run_ids()
        ),
        calibrated=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/analysis.json", run_id=llc_calibrated_run_ids()
        ),
        metas=lambda wildcards: expand(
            f"{LLC_TARGET_DIR}/meta.json", target_id=llc_sweep()[0]
        ),
    output:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
        tsv=report(
            f"{LLC_RESULTS}/llc_runs.tsv",
            category="llc",
            labels={
                "table": "one row per run: config, LLC estimate, truth, error, flags"
            },
        ),
        summary=f"{LLC_RESULTS}/SUMMARY.txt",
        # removed by llc_check when runs failed, so that the next run redoes the table
        status=f"{LLC_RESULTS}/llc_runs.status.json",
    log:
        "logs/llc/aggregate.log",
    localrule: True
    conda:
        "../envs/llc.yaml"
    params:
        names=lambda wildcards: llc_names(),
        flags=LLC.get("flags", {}),
    script:
        "../scripts/llc/aggregate.py"


rule llc_check:
    input:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
    output:
        f"{LLC_RESULTS}/llc_check.txt",
    log:
        "logs/llc/check.log",
    localrule: True
    conda:
        "../envs/llc.yaml"
    params:
        results_dir=lambda wildcards, input: str(Path(input.parquet).parent),
        # not an input: Snakemake puts back the inputs of a failed job
        status=f"{LLC_RESULTS}/llc_runs.status.json",
    script:
        "../scripts/llc/check.py"


rule llc_plot_traces:
    input:
        parquet=f"{LLC_RESULTS}/llc_runs.parquet",
        traces=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/traces.npz", run_id=llc_run_ids(wildcards.target_id)
        ),
        calibrated=lambda wildcards: expand(
            f"{LLC_RUN_DIR}/traces.npz",
            run_id=llc_calibrated_run_ids(wildcards.target_id),
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
        calibrations=lambda wildcards: llc_calibration_files(),
        calibration_figures=lambda wildcards: llc_calibration_files(
            name="calibration.png"
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
