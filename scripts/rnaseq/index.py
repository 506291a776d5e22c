"""Build the kallisto index of one transcriptome (once; every run of that species shares it)."""

from rnaseq.quantify import build_index

if "snakemake" in globals():
    from common import setup_logging

    log = setup_logging(snakemake.log[0])
    build_index(
        snakemake.input.fasta,
        snakemake.output.index,
        kmer=int(snakemake.params.kmer),
        binary=snakemake.params.kallisto,
    )
    log.info("kallisto index of %s written to %s", snakemake.input.fasta, snakemake.output.index)
