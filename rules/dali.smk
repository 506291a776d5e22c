# Workflow dali: DPAM's iterative DALI per protein (scripts/dali/). Every temporary file lives in the
# job's shadow directory under the profile's `shadow-prefix` (node-local scratch on SLURM); templates
# come through a per-node cache beside it. The shared tree sees the two input reads and the two
# outputs that Snakemake moves back.
import functools
import re

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
        listing = require_path("dali.protein_list", DALI["protein_list"])
        with open(listing) as handle:
            names = [line.split("#")[0].strip() for line in handle]
        names = [name for name in names if name]
        where = f"dali.protein_list '{listing}'"
    else:
        suffix = "_hits4Dali"
        with os.scandir(require_path("dali.input_dir", DALI["input_dir"])) as entries:
            names = sorted(
                e.name[: -len(suffix)] for e in entries if e.name.endswith(suffix)
            )
        where = f"dali.input_dir '{DALI['input_dir']}'"
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
    # Every protein's done marker comes in through the summary; the check fails naming the
    # proteins that failed (and removes their markers, so that the next run redoes them).
    return [
        "results/dali/dali_summary.tsv",
        "results/dali/SUMMARY.txt",
        "results/dali/dali_check.txt",
    ]


WORKFLOW_TARGETS["dali"] = dali_targets


rule dali_all:
    input:
        lambda wildcards: dali_targets(),


rule dali_iterative:
    input:
        pdb=os.path.join(dali_path(DALI["input_dir"]), "{protein}.pdb"),
        hits=os.path.join(dali_path(DALI["input_dir"]), "{protein}_hits4Dali"),
    # One output, always written: a protein that fails records why in its marker and the job
    # succeeds, because on SLURM proteins run in batches (group dali_batch) and a failed job fails
    # its whole batch (snakemake/snakemake#2508). The DPAM hits file is written by the script,
    # atomically, beside the marker and only on success.
    output:
        done="results/dali/{protein}.iterativeDali.done",
    log:
        "logs/dali/{protein}.log",
    benchmark:
        "benchmarks/dali/{protein}.tsv"
    wildcard_constraints:
        protein=SAFE_NAME,
    shadow:
        "minimal"
    conda:
        "../envs/dali.yaml"
    threads: 1
    resources:
        # machine settings, overridden per profile (set-resources): 0 workers = min(4 x threads, 64)
        dali_workers=0,
        dali_aligner_timeout_s=600,
        dali_stale_scratch_s=3600,
        mem_mb=2000,
        disk_mb=1000,  # a fixed value: the default sizes inputs, a stat per job at parse time
        runtime=60,
    params:
        results_dir=os.path.abspath("results/dali"),
        template_dir=os.path.abspath(DALI["template_dir"]),
        aligner=DALI["aligner"],
        dali_pl=DALI["dali_pl"],
        tmalign=DALI["tmalign"],
        min_tmscore=DALI["min_tmscore"],
        missing_template=DALI["missing_template"],
    script:
        "../scripts/dali/iterative_dali.py"


rule dali_summary:
    input:
        done=lambda wildcards: expand(
            "results/dali/{protein}.iterativeDali.done", protein=dali_proteins()
        ),
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
