# Workflow rnaseq: per run, download from the first source that works (verified: size, MD5, gzip,
# read counts), quantify with kallisto (checked: reads processed == reads in the FASTQ), delete the
# FASTQ once quantified, then merge matrices and a QC table. Concurrency of downloads and of
# quantifications are the global resources download_slots and quant_slots (see the profiles), so
# the caps hold across every job, local or on SLURM; the runs whose FASTQs are on disk at once are
# capped by disk slots (scripts/rnaseq/disk_slots.py). A run that fails records why in its metrics
# and its jobs succeed: the matrices and tables cover every run that succeeded, and rnaseq_check
# fails the workflow naming the failed runs (and clears their records, so the next run redoes them).
import functools

from rnaseq.ena import ResolveError
from rnaseq.samples import RUN_PATTERN, SampleSheetError, sheet_from_config

RNASEQ = config["rnaseq"]


@functools.cache
def rnaseq_sheet():
    """The sample sheet's runs by accession; read once per Snakemake process."""
    if RNASEQ["accessions"]:
        require_path("rnaseq.accessions", RNASEQ["accessions"], "accession list")
    else:
        require_path("rnaseq.samples", RNASEQ["samples"], "sample sheet")
    try:
        runs = sheet_from_config(RNASEQ)
    except (SampleSheetError, ResolveError) as err:
        raise WorkflowError(str(err)) from None
    # only the species the sheet names: a --configfile's transcriptomes are merged into the
    # bundled example's, whose FASTA a fresh clone does not have
    for species in sorted({r.species for r in runs.values()}):
        path = RNASEQ["transcriptomes"][species]
        require_path(f"rnaseq.transcriptomes.{species}", path, "transcriptome FASTA")
    return runs


def rnaseq_run(run):
    runs = rnaseq_sheet()
    if run not in runs:
        raise WorkflowError(f"rnaseq: run '{run}' is not in {RNASEQ['samples']}")
    return runs[run]


def rnaseq_species_runs(species):
    return [r.run for r in rnaseq_sheet().values() if r.species == species]


def rnaseq_matrices():
    species = sorted({r.species for r in rnaseq_sheet().values()})
    return [
        f"results/rnaseq/merge/{s}/{s}_{quantity}.tsv"
        for s in species
        for quantity in ("est_counts", "tpm", "eff_length")
    ] + [
        f"results/rnaseq/merge/{s}/{s}_gene_{quantity}.tsv"
        for s in species
        if s in RNASEQ["tx2gene"]
        for quantity in ("est_counts", "tpm")
    ]


def rnaseq_targets():
    return rnaseq_matrices() + [
        "results/rnaseq/qc/runs_qc.tsv",
        "results/rnaseq/qc/runs_qc.png",
        "results/rnaseq/merge/metadata.tsv",
        "results/rnaseq/SUMMARY.txt",
        "results/rnaseq/qc/multiqc_report.html",
        "results/rnaseq/rnaseq_check.txt",
    ]


WORKFLOW_TARGETS["rnaseq"] = rnaseq_targets


rule rnaseq_all:
    input:
        lambda wildcards: rnaseq_targets(),


rule rnaseq_index:
    input:
        fasta=lambda wc: RNASEQ["transcriptomes"][wc.species],
    output:
        index="results/rnaseq/index/{species}.idx",
    log:
        "logs/rnaseq/index/{species}.log",
    benchmark:
        "benchmarks/rnaseq/index/{species}.tsv"
    wildcard_constraints:
        species=SAFE_NAME,
    conda:
        "../envs/rnaseq.yaml"
    params:
        kmer=RNASEQ["quant"]["kmer"],
        kallisto=RNASEQ["quant"]["kallisto"],
    script:
        "../scripts/rnaseq/index.py"


# The FASTQ folder is temp(); the quantification deletes the FASTQs themselves as soon as kallisto
# is done (and gives back the disk slot). Partial transfers live in results/rnaseq/partial/<run>/,
# outside the declared output, so a killed or failed attempt is resumed, not restarted. The last
# attempt of a run that keeps failing records the failure in its metrics and succeeds.
rule rnaseq_download:
    output:
        fastq=temp(directory("results/rnaseq/fastq/{run}")),
        metrics="results/rnaseq/download/{run}.json",
    log:
        main="logs/rnaseq/download/{run}.log",
    benchmark:
        "benchmarks/rnaseq/download/{run}.tsv"
    wildcard_constraints:
        run=RUN_PATTERN,
    retries: RNASEQ["download"]["retries"]
    conda:
        "../envs/rnaseq.yaml"
    resources:
        download_slots=1,
        download_attempt=lambda wc, attempt: attempt,
    # Where and how to fetch (sheet URLs, mirror, sources, timeouts) is read by the script from
    # the config, not passed as params: changing a mirror or a timeout must not re-download and
    # re-quantify finished runs (the MD5s, not the URLs, say what the data are).
    params:
        partial=lambda wc: f"results/rnaseq/partial/{wc.run}",
        disk_slots="results/rnaseq/disk_slots",
        # every attempt's lines, numbered; not a declared log: Snakemake empties those per attempt
        history=lambda wc: f"logs/rnaseq/download/{wc.run}.history.log",
        in_sheet=lambda wc: rnaseq_run(wc.run).run,
    script:
        "../scripts/rnaseq/download.py"


rule rnaseq_quant:
    input:
        fastq="results/rnaseq/fastq/{run}",
        download="results/rnaseq/download/{run}.json",
        index=lambda wc: f"results/rnaseq/index/{rnaseq_run(wc.run).species}.idx",
    # The marker: status ok (then <run>_abundance.tsv and <run>_run_info.json are beside it,
    # written first) or failed, with the stage and the error.
    output:
        metrics="results/rnaseq/quant/{run}/{run}_metrics.json",
    log:
        main="logs/rnaseq/quant/{run}.log",
        kallisto="logs/rnaseq/quant/{run}.kallisto.log",
    benchmark:
        "benchmarks/rnaseq/quant/{run}.tsv"
    wildcard_constraints:
        run=RUN_PATTERN,
    # Downloaded runs are quantified before more downloads start, so FASTQs do not pile up.
    priority: 10
    conda:
        "../envs/rnaseq.yaml"
    resources:
        quant_slots=1,
    params:
        fragment_length=lambda wc: rnaseq_run(wc.run).fragment_length
        or RNASEQ["quant"]["fragment_length"],
        fragment_sd=lambda wc: rnaseq_run(wc.run).fragment_sd
        or RNASEQ["quant"]["fragment_sd"],
        timeout=RNASEQ["quant"]["timeout_s"],
        # the science of the estimates: a change redoes the runs (the FASTQs are fetched again)
        kallisto=[
            RNASEQ["quant"][key]
            for key in ("kallisto", "strandedness", "bootstraps", "seed", "extra_args")
        ],
        partial=lambda wc: f"results/rnaseq/partial/{wc.run}",
        disk_slots="results/rnaseq/disk_slots",
    script:
        "../scripts/rnaseq/quantify.py"


def rnaseq_metrics(runs):
    return [f"results/rnaseq/quant/{run}/{run}_metrics.json" for run in runs]


rule rnaseq_merge:
    input:
        metrics=lambda wc: rnaseq_metrics(rnaseq_species_runs(wc.species)),
    output:
        est_counts="results/rnaseq/merge/{species}/{species}_est_counts.tsv",
        tpm="results/rnaseq/merge/{species}/{species}_tpm.tsv",
        eff_length="results/rnaseq/merge/{species}/{species}_eff_length.tsv",
    log:
        "logs/rnaseq/merge/{species}.log",
    wildcard_constraints:
        species=SAFE_NAME,
    localrule: True
    conda:
        "../envs/rnaseq.yaml"
    script:
        "../scripts/rnaseq/merge.py"


rule rnaseq_genes:
    input:
        est_counts="results/rnaseq/merge/{species}/{species}_est_counts.tsv",
        tpm="results/rnaseq/merge/{species}/{species}_tpm.tsv",
        tx2gene=lambda wc: require_path(
            f"rnaseq.tx2gene.{wc.species}",
            RNASEQ["tx2gene"][wc.species],
            "tx2gene table",
        ),
    output:
        est_counts="results/rnaseq/merge/{species}/{species}_gene_est_counts.tsv",
        tpm="results/rnaseq/merge/{species}/{species}_gene_tpm.tsv",
    log:
        "logs/rnaseq/genes/{species}.log",
    wildcard_constraints:
        species=SAFE_NAME,
    localrule: True
    conda:
        "../envs/rnaseq.yaml"
    script:
        "../scripts/rnaseq/genes.py"


rule rnaseq_qc:
    input:
        metrics=lambda wc: rnaseq_metrics(rnaseq_sheet()),
    output:
        qc=report(
            "results/rnaseq/qc/runs_qc.tsv",
            category="rnaseq",
            caption="../scripts/rnaseq/qc_caption.rst",
        ),
        plot=report(
            "results/rnaseq/qc/runs_qc.png",
            category="rnaseq",
            caption="../scripts/rnaseq/qc_caption.rst",
        ),
        metadata="results/rnaseq/merge/metadata.tsv",
        summary="results/rnaseq/SUMMARY.txt",
    log:
        "logs/rnaseq/qc.log",
    localrule: True
    conda:
        "../envs/rnaseq.yaml"
    params:
        # named, not waited for: the merge runs beside this job
        matrices=lambda wc: rnaseq_matrices(),
    script:
        "../scripts/rnaseq/qc.py"


rule rnaseq_multiqc:
    input:
        metrics=lambda wc: rnaseq_metrics(rnaseq_sheet()),
    output:
        html=report(
            "results/rnaseq/qc/multiqc_report.html",
            category="rnaseq",
            labels={"report": "MultiQC: kallisto per run"},
        ),
    log:
        "logs/rnaseq/multiqc.log",
    localrule: True
    conda:
        "../envs/rnaseq.yaml"
    params:
        logs="logs/rnaseq/quant",
    script:
        "../scripts/rnaseq/multiqc_report.py"


# Last: fails the workflow naming every failed run, after the matrices and tables of the others
# are written; removes the failed runs' records so that the next run redoes only those.
rule rnaseq_check:
    input:
        qc="results/rnaseq/qc/runs_qc.tsv",
        matrices=lambda wc: rnaseq_matrices(),
    output:
        "results/rnaseq/rnaseq_check.txt",
    log:
        "logs/rnaseq/check.log",
    localrule: True
    conda:
        "../envs/rnaseq.yaml"
    params:
        # the other outputs of rnaseq_qc: dated back with the QC table when a run failed
        aggregates=[
            "results/rnaseq/qc/runs_qc.png",
            "results/rnaseq/merge/metadata.tsv",
            "results/rnaseq/SUMMARY.txt",
        ],
    script:
        "../scripts/rnaseq/check.py"


WORKFLOW_VERSIONS["rnaseq"] = {
    "libraries": ["numpy", "pandas", "matplotlib", "multiqc"],
    "tools": {
        "kallisto": [RNASEQ["quant"]["kallisto"], "version"],
        "prefetch": ["prefetch", "--version"],
        "fasterq-dump": ["fasterq-dump", "--version"],
        "vdb-validate": ["vdb-validate", "--version"],
    },
}
