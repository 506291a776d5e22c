"""The batch's per-run QC table, amalgkit-style metadata.tsv, the QC plot and SUMMARY.txt."""

from pathlib import Path

from rnaseq.merge import amalgkit_metadata, plot_qc, qc_table, write_summary
from rnaseq.samples import sheet_from_config

if "snakemake" in globals():
    from common import setup_logging, write_table

    log = setup_logging(snakemake.log[0])
    qc = qc_table(snakemake.input.metrics)
    write_table(qc, snakemake.output.qc)
    sheet = sheet_from_config(snakemake.config["rnaseq"])
    write_table(amalgkit_metadata(qc, {r.run: r.metadata for r in sheet.values()}), snakemake.output.metadata)
    plot_qc(qc, snakemake.output.plot)
    entries = {f"{Path(p).stem} matrix": p for p in snakemake.params.matrices}
    entries.update({"per-run QC table": snakemake.output.qc, "QC plot": snakemake.output.plot})
    failed = qc[qc["status"] != "ok"]
    entries["runs"] = f"{len(qc) - len(failed)} quantified, {len(failed)} failed"
    if len(failed):
        entries["failed runs (status, error)"] = snakemake.output.qc
    write_summary(snakemake.output.summary, entries)
    log.info("%d runs summarised, %d failed", len(qc), len(failed))
