"""Snakemake entry of rule ``dali_check``: fail the run, naming them, if any protein failed.

``dali_iterative`` records a failed protein in its done marker and succeeds (so that it does not
fail the other proteins of its SLURM batch). Here the failure reaches the user: the run's exit code
says something failed, the message names each protein and its error, and the failed proteins' done
markers are removed so that the next run redoes them, as Snakemake does with a failed job. A protein
marked ok whose hits file has gone is redone the same way.
"""

import logging
from pathlib import Path

import pandas as pd
from common import atomic_open, setup_logging

log = logging.getLogger("hpcpipe")


def check(table_path: Path, results_dir: Path, out_path: Path) -> list[str]:
    """Return the problems (one line per protein); write ``out_path`` only when there are none."""
    table = pd.read_csv(table_path, sep="\t", dtype=str, keep_default_na=False)
    problems = []
    for row in table.itertuples():
        hits = results_dir / f"{row.protein}_iterativdDali_hits"
        if row.status != "ok":
            problems.append(f"protein {row.protein} failed: {row.error} (log: logs/dali/{row.protein}.log)")
        elif not hits.exists():
            problems.append(f"protein {row.protein}: its hits file {hits} is missing")
        else:
            continue
        (results_dir / f"{row.protein}.iterativeDali.done").unlink(missing_ok=True)
    if not problems:
        with atomic_open(out_path) as handle:
            handle.write(f"{len(table)} proteins, every one with its hits file\n")
    return problems


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    table = Path(snakemake.input.table)
    problems = check(table, table.parent, Path(snakemake.output[0]))
    for line in problems:
        log.error(line)
    if problems:
        raise SystemExit(
            f"{len(problems)} dali protein(s) failed; their markers are removed, so the next run "
            "redoes them:\n  " + "\n  ".join(problems)
        )
