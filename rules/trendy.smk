# Workflow trendy: TRENDY land-model outputs to ILAMB-ready CF NetCDF, one job per file.
#
#   trendy_convert  one source file -> staging dir with <ilamb name>.nc and status.json;
#                   a bad input is recorded there and the job still succeeds
#   trendy_publish  staged file -> MODELS/<model>_<Sx>/<ilamb name>.nc; fails for a bad input
#   trendy_report   every status.json -> conversions.tsv (failed files too), SUMMARY.txt
import functools

from trendy.inventory import duplicate_outputs, find_sources

TRENDY = config["trendy"]
TRENDY_RESULTS = "results/trendy"
TRENDY_MODELS = f"{TRENDY_RESULTS}/MODELS"


@functools.cache
def trendy_sources():
    """(model, simulation, variable) -> source file; lists only the configured directories."""
    require_path("trendy.root", TRENDY["root"], kind="directory")
    if not TRENDY.get("variables"):
        raise WorkflowError("config key 'trendy.variables': no variables configured")
    sources = find_sources(
        TRENDY["root"],
        TRENDY["models"],
        TRENDY["simulations"],
        list(TRENDY["variables"]),
        TRENDY["file_prefixes"],
    )
    ilamb_names = {
        name: entry["ilamb_name"] for name, entry in TRENDY["variables"].items()
    }
    clashes = duplicate_outputs(sources, ilamb_names)
    if clashes:
        raise WorkflowError(
            "trendy: two inputs map to one output:\n  " + "\n  ".join(clashes)
        )
    return sources


def trendy_source(wildcards):
    key = (wildcards.model, wildcards.simulation, wildcards.variable)
    if key not in trendy_sources():
        raise WorkflowError(f"trendy: no source file for {key} under {TRENDY['root']}")
    return trendy_sources()[key].path


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


rule trendy_report:
    input:
        stages=lambda wildcards: [trendy_stage(*key) for key in trendy_sources()],
    output:
        table=report(
            f"{TRENDY_RESULTS}/conversions.tsv",
            category="trendy",
            labels={"table": "every converted file: status, error, units, time span"},
        ),
        summary=f"{TRENDY_RESULTS}/SUMMARY.txt",
    log:
        "logs/trendy/report.log",
    localrule: True
    conda:
        "../envs/trendy.yaml"
    params:
        models_dir=TRENDY_MODELS,
    script:
        "../scripts/trendy/report.py"
