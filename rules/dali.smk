# Workflow dali: DPAM's iterative DALI (scripts/dali/), in batches of proteins.
#
#   dali_plan (checkpoint) -> dali_batch (one job per batch) -> dali_summary -> dali_check
#
# The DAG follows batches, not proteins: the plan puts each protein into batch hash(name) mod n
# (about batch_size proteins each) and rewrites a batch's manifest only when its proteins or their
# inputs change. A batch job runs in its shadow directory under the profile's `shadow-prefix`
# (node-local scratch on SLURM): every temporary file stays there, templates come through a
# per-node cache beside it, and the shared tree sees the inputs read, each protein's hits file and
# done marker, and the batch state that Snakemake moves back.
import functools
import re

from batches import read_batch_ids
from dali.plan import read_protein_names

DALI = config["dali"]
DALI_PROTEIN = re.compile(SAFE_NAME)


def dali_path(path):
    """A relative path that climbs out of the workdir cannot be shadowed: make it absolute."""
    path = os.path.normpath(path)
    return os.path.abspath(path) if path.startswith("..") else path


@functools.cache
def dali_proteins():
    """Protein prefixes from the list file, or from one listing of input_dir; names are checked."""
    if DALI["protein_list"]:
        require_path("dali.protein_list", DALI["protein_list"])
    else:
        require_path("dali.input_dir", DALI["input_dir"])
    names, where = read_protein_names(DALI["protein_list"], DALI["input_dir"])
    bad = [name for name in names if not DALI_PROTEIN.fullmatch(name)]
    if bad:
        raise WorkflowError(
            f"{where}: protein names must match {SAFE_NAME} (no path separators, spaces "
            f"or shell characters): {bad}"
        )
    if len(set(names)) != len(names):
        raise WorkflowError(f"{where}: protein names are listed more than once")
    if not names:
        raise WorkflowError(f"{where}: no proteins")
    return names


def dali_batches(wildcards):
    """The batch states, known once the plan has run (re-evaluated after it runs)."""
    plan = checkpoints.dali_plan.get().output.plan
    return expand("results/dali/batches/batch-{batch}.json", batch=read_batch_ids(plan))


def dali_targets():
    require_path("dali.input_dir", DALI["input_dir"], "directory")
    require_path("dali.template_dir", DALI["template_dir"], "directory")
    if DALI["aligner"] == "dali":
        if not DALI["dali_pl"]:
            raise WorkflowError(
                "config key 'dali.dali_pl': aligner is 'dali' but no path to DaliLite's dali.pl is set"
            )
        require_path("dali.dali_pl", DALI["dali_pl"], "DaliLite dali.pl")
    dali_proteins()  # checks the names before any job
    # Every batch's state comes in through the summary; the check fails naming the proteins that
    # failed (and removes their batches' states, so that the next run redoes those proteins).
    return [
        "results/dali/dali_summary.tsv",
        "results/dali/SUMMARY.txt",
        "results/dali/dali_check.txt",
    ]


WORKFLOW_TARGETS["dali"] = dali_targets


rule dali_all:
    input:
        lambda wildcards: dali_targets(),


checkpoint dali_plan:
    input:
        # A directory's mtime changes when a file in it is created, renamed or removed: a new
        # protein, a replaced template set. An input rewritten in place is not seen: run
        # `--forcerun dali_plan` (proteins whose signature is unchanged are still skipped).
        input_dir=dali_path(DALI["input_dir"]),
        template_dir=dali_path(DALI["template_dir"]),
        protein_list=[dali_path(DALI["protein_list"])] if DALI["protein_list"] else [],
    output:
        plan="results/dali/plan/proteins.tsv",
    log:
        "logs/dali/plan.log",
    benchmark:
        "benchmarks/dali/plan.tsv"
    localrule: True
    conda:
        "../envs/dali.yaml"
    params:
        input_dir=os.path.abspath(DALI["input_dir"]),
        template_dir=os.path.abspath(DALI["template_dir"]),
        protein_list=(
            os.path.abspath(DALI["protein_list"]) if DALI["protein_list"] else ""
        ),
        batch_dir="results/dali/plan/batches",
        batch_size=DALI["batch_size"],
        # what changes a protein's result besides its files: a change reruns its batch
        settings={
            key: DALI[key]
            for key in (
                "aligner",
                "dali_pl",
                "tmalign",
                "min_tmscore",
                "missing_template",
            )
        },
    script:
        "../scripts/dali/plan.py"


rule dali_batch:
    input:
        # Written by the plan only when this batch's proteins or their inputs change.
        manifest="results/dali/plan/batches/batch-{batch}.tsv",
    output:
        state="results/dali/batches/batch-{batch}.json",
    log:
        "logs/dali/batch-{batch}.log",
    benchmark:
        "benchmarks/dali/batch-{batch}.tsv"
    wildcard_constraints:
        batch=r"\d{3}",
    shadow:
        "minimal"
    conda:
        "../envs/dali.yaml"
    threads: 4
    resources:
        # machine settings, overridden per profile (set-resources): 0 workers = min(4 x threads, 64)
        dali_workers=0,
        dali_aligner_timeout_s=600,
        dali_stale_scratch_s=3600,
        mem_mb=4000,
        disk_mb=1000,  # a fixed value: the default sizes inputs, a stat per job at parse time
        runtime=240,
    params:
        input_dir=os.path.abspath(DALI["input_dir"]),
        results_dir=os.path.abspath("results/dali"),
        template_dir=os.path.abspath(DALI["template_dir"]),
        aligner=DALI["aligner"],
        dali_pl=DALI["dali_pl"],
        tmalign=DALI["tmalign"],
        min_tmscore=DALI["min_tmscore"],
        missing_template=DALI["missing_template"],
    script:
        "../scripts/dali/batch.py"


rule dali_summary:
    input:
        states=dali_batches,
    output:
        table=report(
            "results/dali/dali_summary.tsv",
            category="dali",
            caption="../scripts/dali/summary_caption.rst",
        ),
        summary="results/dali/SUMMARY.txt",
    log:
        "logs/dali/summary.log",
    localrule: True
    conda:
        "../envs/dali.yaml"
    script:
        "../scripts/dali/summarize.py"


rule dali_check:
    input:
        table="results/dali/dali_summary.tsv",
        # Also here, not only behind the summary: when the check removed a batch's state, Snakemake
        # 9.27 did not rerun the batch behind the checkpoint-dependent summary.
        states=dali_batches,
    output:
        "results/dali/dali_check.txt",
    log:
        "logs/dali/check.log",
    localrule: True
    conda:
        "../envs/dali.yaml"
    script:
        "../scripts/dali/check.py"


WORKFLOW_VERSIONS["dali"] = {
    "libraries": ["numpy", "pandas"],
    "tools": (
        {"TMalign": [DALI["tmalign"], "-v"]}
        if DALI["aligner"] == "tmalign"
        else {"DaliLite dali.pl": [DALI["dali_pl"], "--help"]}
    ),
}
