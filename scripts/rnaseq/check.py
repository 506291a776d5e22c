"""Snakemake entry of rule ``rnaseq_check``: fail the workflow, naming them, if any run failed.

A run's download or quantification records its failure in ``quant/<run>/<run>_metrics.json`` and
the job succeeds, so that the matrices, ``metadata.tsv`` and the QC table cover every run that
succeeded. Here the failure reaches the user: the exit code says something failed, the message
names each run, its stage and error, and the failed runs' records are removed so that the next
run redoes only them (their verified partial files are reused).

Snakemake does not redo a missing input whose consumer's outputs exist (that is how temp() files
stay gone), so the tables and matrices are also dated back to 1970 (``os.utime``): they stay for
the user to read, and the next run sees them older than their inputs, rebuilds them, and on the
way redoes the failed runs whose records are gone.
"""

import os
from pathlib import Path

import pandas as pd
from common import atomic_open, fail_naming, setup_logging


def check(qc_path: Path, results: Path, out_path: Path, aggregates: list[Path] = ()) -> list[str]:
    """Return one line per failed run (removing its records and dating ``aggregates`` back so the
    next run rebuilds them); write ``out_path`` when none failed."""
    qc = pd.read_csv(qc_path, sep="\t", dtype=str, keep_default_na=False)
    problems = []
    for row in qc.itertuples():
        if row.status == "ok":
            continue
        problems.append(
            f"run {row.run} failed at {row.failed_stage}: {row.error} "
            f"(log: logs/rnaseq/{row.failed_stage}/{row.run}.log)"
        )
        (results / "quant" / row.run / f"{row.run}_metrics.json").unlink(missing_ok=True)
        (results / "download" / f"{row.run}.json").unlink(missing_ok=True)
    for path in aggregates if problems else ():
        if path.exists():
            os.utime(path, (0, 0))
    if not problems:
        with atomic_open(out_path) as handle:
            handle.write(f"{len(qc)} runs, every one quantified\n")
    return problems


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    qc = Path(snakemake.input.qc)
    aggregates = [
        Path(p) for p in [snakemake.input.qc, *snakemake.input.matrices, *snakemake.params.aggregates]
    ]
    problems = check(qc, qc.parent.parent, Path(snakemake.output[0]), aggregates)
    fail_naming(
        problems,
        f"{len(problems)} rnaseq run(s) failed; the matrices cover the others, and the next "
        "run redoes only these",
    )
