# Workflow rnaseq: per run, download from the first source that works (verified: size, MD5, gzip,
# read counts), quantify with kallisto (checked: reads processed == reads in the FASTQ), delete the
# FASTQ once quantified, then merge matrices and a QC table. Concurrency of downloads and of
# quantifications are the global resources download_slots and quant_slots (see the profiles), so
# the caps hold across every job, local or on SLURM.
import functools

from rnaseq.samples import RUN_PATTERN, SampleSheetError, load_sample_sheet

RNASEQ = config["rnaseq"]


@functools.cache
def rnaseq_sheet():
    """The sample sheet's runs by accession; read once per Snakemake process."""
    require_path("rnaseq.samples", RNASEQ["samples"], "sample sheet")
    for species, fasta in RNASEQ["transcriptomes"].items():
        require_path(f"rnaseq.transcriptomes.{species}", fasta, "transcriptome FASTA")
    try:
        return load_sample_sheet(
            RNASEQ["samples"],
            RNASEQ["transcriptomes"],
            sources=RNASEQ["sources"],
            mirror_base=RNASEQ["mirror_base"],
            default_scheme=RNASEQ["default_scheme"],
        )
    except SampleSheetError as err:
        raise WorkflowError(str(err)) from None


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
    ]


def rnaseq_targets():
    return rnaseq_matrices() + [
        "results/rnaseq/qc/runs_qc.tsv",
        "results/rnaseq/qc/runs_qc.png",
        "results/rnaseq/merge/metadata.tsv",
        "results/rnaseq/SUMMARY.txt",
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
    script:
        "../scripts/rnaseq/index.py"


# The FASTQ folder is temp(): it goes as soon as its quantification succeeded, and stays when the
# quantification fails (for the retry). Partial transfers live in results/rnaseq/partial/<run>/,
# outside the declared output, so a killed or failed attempt is resumed, not restarted.
rule rnaseq_download:
    output:
        fastq=temp(directory("results/rnaseq/fastq/{run}")),
        metrics="results/rnaseq/download/{run}.json",
    log:
        "logs/rnaseq/download/{run}.log",
    benchmark:
        "benchmarks/rnaseq/download/{run}.tsv"
    wildcard_constraints:
        run=RUN_PATTERN,
    retries: RNASEQ["download"]["retries"]
    conda:
        "../envs/rnaseq.yaml"
    resources:
        download_slots=1,
    # Where and how to fetch (sheet URLs, mirror, sources, timeouts) is read by the script from
    # the config, not passed as params: changing a mirror or a timeout must not re-download and
    # re-quantify finished runs (the MD5s, not the URLs, say what the data are).
    params:
        partial=lambda wc: f"results/rnaseq/partial/{wc.run}",
        in_sheet=lambda wc: rnaseq_run(wc.run).run,
    script:
        "../scripts/rnaseq/download.py"


rule rnaseq_quant:
    input:
        fastq="results/rnaseq/fastq/{run}",
        download="results/rnaseq/download/{run}.json",
        index=lambda wc: f"results/rnaseq/index/{rnaseq_run(wc.run).species}.idx",
    output:
        abundance="results/rnaseq/quant/{run}/{run}_abundance.tsv",
        run_info="results/rnaseq/quant/{run}/{run}_run_info.json",
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
    script:
        "../scripts/rnaseq/quantify.py"


rule rnaseq_merge:
    input:
        abundance=lambda wc: [
            f"results/rnaseq/quant/{run}/{run}_abundance.tsv"
            for run in rnaseq_species_runs(wc.species)
        ],
    output:
        est_counts="results/rnaseq/merge/{species}/{species}_est_counts.tsv",
        tpm="results/rnaseq/merge/{species}/{species}_tpm.tsv",
        eff_length="results/rnaseq/merge/{species}/{species}_eff_length.tsv",
    log:
        "logs/rnaseq/merge/{species}.log",
    wildcard_constraints:
        species=SAFE_NAME,
    conda:
        "../envs/rnaseq.yaml"
    params:
        runs=lambda wc: rnaseq_species_runs(wc.species),
    script:
        "../scripts/rnaseq/merge.py"


rule rnaseq_qc:
    input:
        metrics=lambda wc: [
            f"results/rnaseq/quant/{run}/{run}_metrics.json" for run in rnaseq_sheet()
        ],
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
    conda:
        "../envs/rnaseq.yaml"
    params:
        # named, not waited for: the merge runs beside this job
        matrices=lambda wc: rnaseq_matrices(),
    script:
        "../scripts/rnaseq/qc.py"


WORKFLOW_VERSIONS["rnaseq"] = {
    "libraries": ["numpy", "pandas", "matplotlib"],
    "tools": {
        "kallisto": ["kallisto", "version"],
        "prefetch": ["prefetch", "--version"],
        "fasterq-dump": ["fasterq-dump", "--version"],
        "vdb-validate": ["vdb-validate", "--version"],
    },
}
