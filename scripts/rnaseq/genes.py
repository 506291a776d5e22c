"""Gene-level est_counts and TPM matrices from the transcript ones and a transcript-to-gene table."""

if "snakemake" in globals():
    import pandas as pd
    from common import setup_logging, write_table

    from rnaseq.merge import gene_matrix, read_tx2gene

    log = setup_logging(snakemake.log[0])
    counts = pd.read_csv(snakemake.input.est_counts, sep="\t", dtype={"target_id": str})
    tpm = pd.read_csv(snakemake.input.tpm, sep="\t", dtype={"target_id": str})
    tx2gene = read_tx2gene(snakemake.input.tx2gene, set(counts["target_id"]))
    write_table(gene_matrix(counts, tx2gene), snakemake.output.est_counts)
    write_table(gene_matrix(tpm, tx2gene), snakemake.output.tpm)
    log.info(
        "%s: %d transcripts summed into %d genes", snakemake.wildcards.species, len(counts), tx2gene.nunique()
    )
