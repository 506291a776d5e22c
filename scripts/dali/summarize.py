"""Snakemake entry of rule ``dali_summary``: one table row per protein from the done markers."""

import json
from pathlib import Path

import pandas as pd
from common import atomic_open, write_table

COLUMNS = [
    "protein",
    "status",
    "error",
    "aligner",
    "candidates",
    "hits",
    "candidates_with_hits",
    "aligner_calls",
    "cache_hits",
    "cache_misses",
    "missing_templates",
    "workers",
    "seconds",
    "host",
]


def summary_table(done_files: list[Path]) -> pd.DataFrame:
    """Read the JSON done markers into a table (missing templates joined by spaces)."""
    rows = []
    for path in done_files:
        stats = json.loads(Path(path).read_text())
        stats.setdefault("status", "ok")
        stats["missing_templates"] = " ".join(stats.get("missing_templates", []))
        rows.append({column: stats.get(column) for column in COLUMNS})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_summary(
    done_files: list[Path], table_path: Path, summary_path: Path, hits_dir: str
) -> pd.DataFrame:
    """Write the per-protein table and ``SUMMARY.txt`` (what to open first)."""
    table = summary_table(done_files)
    write_table(table, table_path)
    lookups = int(table["cache_hits"].sum() + table["cache_misses"].sum())
    failed = table[table["status"] != "ok"]
    with atomic_open(summary_path) as handle:
        handle.write(f"per-protein table: {table_path}\n")
        handle.write(f"hits files (DPAM format): {hits_dir}/<protein>_iterativdDali_hits\n")
        handle.write(
            f"proteins: {len(table)}, hits: {int(table['hits'].sum())}, "
            f"template cache hit rate: {table['cache_hits'].sum() / lookups if lookups else 0:.2f}\n"
        )
        if len(failed):
            handle.write(
                f"FAILED proteins: {len(failed)} (status and error in the table, logs in logs/dali/):\n"
            )
            for row in failed.itertuples():
                handle.write(f"  {row.protein}: {row.error}\n")
        if len(table) > len(failed) and int(table["hits"].sum()) == 0:
            handle.write(
                "warning: no protein has any hit; check the aligner installation "
                "(DaliLite reports no hits when its DSSP step reads no residues)\n"
            )
    return table


if "snakemake" in globals():
    from common import setup_logging

    setup_logging(snakemake.log[0])
    write_summary(
        [Path(p) for p in snakemake.input.done],
        Path(snakemake.output.table),
        Path(snakemake.output.summary),
        str(Path(snakemake.output.table).parent),
    )
