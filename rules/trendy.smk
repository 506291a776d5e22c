# Workflow trendy: TRENDY land-model outputs to ILAMB-ready CF NetCDF, one job per file.
#
#   trendy_convert  one source file -> staging dir with <ilamb name>.nc and status.json;
#                   a bad input is recorded there and the job still succeeds
#   trendy_publish  staged file -> MODELS/<model>_<Sx>/<ilamb name>.nc; fails for a bad input
#   trendy_report   (checkpoint) every status.json and every input that got no job (missing
#                   model, dangling symlink, case clash) -> conversions.tsv; model_runs.tsv
#                   (land fraction and cell area of each model run), SUMMARY.txt
#   trendy_ilamb    ilamb-run over every published model run (when trendy.ilamb.config is set)
#   trendy_check    fails the run naming every failed row and every model ILAMB dropped
import functools

from trendy.inventory import drop_duplicate_outputs, survey

TRENDY = config["trendy"]
TRENDY_RESULTS = "results/trendy"
TRENDY_MODELS = f"{TRENDY_RESULTS}/MODELS"


@functools.cache
def trendy_inventory():
    """(sources, problems): (model, simulation, variable) -> source file, and the inputs that
    get no job with the reason (rows of the report). Lists only the configured directories.
    """
    require_path("trendy.root", TRENDY["root"], kind="directory")
    if not TRENDY.get("variables"):
        raise WorkflowError("config key 'trendy.variables': no variables configured")
    sources, problems = survey(
        TRENDY["root"],
        TRENDY["models"],
        TRENDY["simulations"],
        list(TRENDY["variables"]),
        TRENDY["file_prefixes"],
    )
    ilamb_names = {
        name: entry["ilamb_name"] for name, entry in TRENDY["variables"].items()
    }
    sources, clashes = drop_duplicate_outputs(sources, ilamb_names)
    return sources, tuple(problems + clashes)


def trendy_sources():
    return trendy_inventory()[0]


def trendy_static_fields():
    """ILAMB name of each static field -> the TRENDY file names that provide it."""
    fields = {}
    for name, entry in TRENDY["variables"].items():
        if entry.get("static"):
            fields.setdefault(entry["ilamb_name"], []).append(name)
    return fields


def trendy_ilamb_enabled():
    """True when an ILAMB benchmark configuration is set and exists. A missing one does not stop
    the conversions: trendy_check fails the run naming it (trendy_ilamb_missing)."""
    path = TRENDY["ilamb"].get("config")
    return bool(path) and os.path.isfile(path)


def trendy_ilamb_missing():
    path = TRENDY["ilamb"].get("config")
    if not path or os.path.isfile(path):
        return ""
    return (
        f"ILAMB not run: config key 'trendy.ilamb.config': file '{path}' does not exist "
        '(for the bundled benchmark run `make examples`; set it to "" to skip ILAMB)'
    )


def trendy_published_ok(wildcards):
    """The published files of every conversion that succeeded (known once the report is written)."""
    import csv

    table = checkpoints.trendy_report.get().output.table
    with open(table) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [row["output"] for row in rows if row["status"] == "ok"]


def trendy_source(wildcards):
    key = (wildcards.model, wildcards.simulation, wildcards.variable)
    if key not in trendy_sources():
        raise WorkflowError(f"trendy: no source file for {key} under {TRENDY['root']}")
    return trendy_sources()[key].path


def trendy_source_stamp(wildcards):
    """Size, mtime and inode of the source: a file replaced by one with an older mtime (rsync -t,
    cp -p) still changes this param, and Snakemake's params trigger reconverts it."""
    stat = os.stat(trendy_source(wildcards))
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"


def trendy_stage(model, simulation, variable):
    return f"{TRENDY_RESULTS}/staging/{model}_{simulation}/{variable}"


def trendy_stage_of_output(wildcards):
    """The staging directory of the TRENDY variable that becomes this ILAMB file."""
    for model, simulation, variable in trendy_sources():
        if (model, simulation) == (wildcards.model, wildcards.simulation) and TRENDY[
            "variables"
        ][variable]["ilamb_name"] == wildcards.ilamb_variable:
            return trendy_stage(model, simulation, variable)
    raise WorkflowError(f"trendy: no source file becomes {wildcards}")


def trendy_targets():
    sources = trendy_sources()
    outputs = [
        f"{TRENDY_MODELS}/{m}_{s}/{TRENDY['variables'][v]['ilamb_name']}.nc"
        for m, s, v in sources
    ]
    return [
        f"{TRENDY_RESULTS}/SUMMARY.txt",
        f"{TRENDY_RESULTS}/conversions.tsv",
        *outputs,
        f"{TRENDY_RESULTS}/check.txt",
    ]


WORKFLOW_TARGETS["trendy"] = trendy_targets


rule trendy_all:
    input:
        lambda wildcards: trendy_targets(),


rule trendy_convert:
    input:
        source=trendy_source,
    output:
        stage=directory(
            f"{TRENDY_RESULTS}/staging/{{model}}_{{simulation}}/{{variable}}"
        ),
    log:
        "logs/trendy/convert/{model}_{simulation}_{variable}.log",
    benchmark:
        "benchmarks/trendy/convert/{model}_{simulation}_{variable}.tsv"
    wildcard_constraints:
        model=SAFE_NAME,
        simulation="S[0-9]",
        variable="[A-Za-z0-9][A-Za-z0-9_]*",
    conda:
        "../envs/trendy.yaml"
    params:
        variable=lambda wildcards: TRENDY["variables"][wildcards.variable],
        source_stamp=trendy_source_stamp,
        unit_aliases=TRENDY["unit_aliases"],
        slab_mb=TRENDY["slab_mb"],
        compression_level=TRENDY["compression_level"],
        ilamb_check=TRENDY["ilamb_check"],
        missing_calendar=lambda wildcards: TRENDY["missing_calendar_by_model"].get(
            wildcards.model, TRENDY["missing_calendar"]
        ),
    script:
        "../scripts/trendy/convert.py"


rule trendy_publish:
    input:
        stage=trendy_stage_of_output,
    output:
        nc=f"{TRENDY_MODELS}/{{model}}_{{simulation}}/{{ilamb_variable}}.nc",
    log:
        "logs/trendy/publish/{model}_{simulation}_{ilamb_variable}.log",
    wildcard_constraints:
        model=SAFE_NAME,
        simulation="S[0-9]",
        ilamb_variable="[A-Za-z0-9][A-Za-z0-9_]*",
    localrule: True
    conda:
        "../envs/trendy.yaml"
    script:
        "../scripts/trendy/publish.py"


checkpoint trendy_report:
    input:
        stages=lambda wildcards: [trendy_stage(*key) for key in trendy_sources()],
    output:
        table=report(
            f"{TRENDY_RESULTS}/conversions.tsv",
            category="trendy",
            labels={"table": "every converted file: status, error, units, time span"},
        ),
        summary=f"{TRENDY_RESULTS}/SUMMARY.txt",
        runs=f"{TRENDY_RESULTS}/model_runs.tsv",
    log:
        "logs/trendy/report.log",
    localrule: True
    conda:
        "../envs/trendy.yaml"
    params:
        models_dir=TRENDY_MODELS,
        problems=lambda wildcards: [p.row() for p in trendy_inventory()[1]],
        static_fields=lambda wildcards: trendy_static_fields(),
    script:
        "../scripts/trendy/report.py"


rule trendy_ilamb:
    input:
        table=f"{TRENDY_RESULTS}/conversions.tsv",
        published=trendy_published_ok,
        benchmarks=TRENDY["ilamb"]["config"] or [],
    output:
        scores=f"{TRENDY_RESULTS}/ilamb/scores.tsv",
        models=f"{TRENDY_RESULTS}/ilamb/models.tsv",
        setup=f"{TRENDY_RESULTS}/ilamb/model_setup.txt",
        build=directory(f"{TRENDY_RESULTS}/ilamb/build"),
    log:
        "logs/trendy/ilamb.log",
    benchmark:
        "benchmarks/trendy/ilamb.tsv"
    conda:
        "../envs/trendy.yaml"
    params:
        models_dir=TRENDY_MODELS,
        # ILAMB_ROOT: the configured one, or the benchmark configuration's folder
        data_root=lambda wildcards, input: TRENDY["ilamb"].get("data_root")
        or os.path.dirname(input.benchmarks),
        skip_plots=TRENDY["ilamb"]["skip_plots"],
        timeout_s=TRENDY["ilamb"]["timeout_s"],
    script:
        "../scripts/trendy/ilamb_run.py"


rule trendy_check:
    input:
        table=f"{TRENDY_RESULTS}/conversions.tsv",
        # evaluated only when the check is in the DAG: other workflows' runs never look at ILAMB's paths
        ilamb_models=lambda wildcards: (
            f"{TRENDY_RESULTS}/ilamb/models.tsv" if trendy_ilamb_enabled() else []
        ),
    output:
        f"{TRENDY_RESULTS}/check.txt",
    log:
        "logs/trendy/check.log",
    localrule: True
    conda:
        "../envs/trendy.yaml"
    params:
        ilamb_missing=lambda wildcards: trendy_ilamb_missing(),
    script:
        "../scripts/trendy/check.py"


WORKFLOW_VERSIONS["trendy"] = {
    "libraries": ["netCDF4", "cftime", "cf-units", "numpy", "pandas", "ILAMB"],
    "tools": {},
}
