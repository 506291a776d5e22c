"""Snakemake entry of rule ``dali_summary``: one table row per protein from the batch states.

The table is written by hand, not by pandas: a column that holds a number for one protein and
nothing for a failed one stays integer (pandas would turn it into floats, ``3.0``), and an error
message with tabs or newlines stays on its protein's line (escaped as ``\\t``, ``\\n``).
"""

import json
from pathlib import Path

from batches import tsv_text
from common import atomic_open

COLUMNS = [
    "protein",
    "status",
    "error",
    "batch",
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
    "reused",
    "host",
]
INTEGER_COLUMNS = {
    "candidates",
    "hits",
    "candidates_with_hits",
    "aligner_calls",
    "cache_hits",
    "cache_misses",
    "workers",
}


def summary_rows(state_files: list[Path]) -> list[dict]:
    """Every protein's record from the batch states, sorted by protein; empty cells for what a
    failed protein does not have, integers as integers."""
    rows = []
    for path in state_files:
        for record in json.loads(Path(path).read_text())["proteins"]:
            row = {column: record.get(column) for column in COLUMNS}
            row["missing_templates"] = " ".join(record.get("missing_templates") or [])
            for column in INTEGER_COLUMNS:
                row[column] = "" if row[column] is None else int(row[column])
            row["reused"] = "yes" if record.get("reused") else "no"
            rows.append({c: "" if v is None else v for c, v in row.items()})
    return sorted(rows, key=lambda row: row["protein"])


def write_summary(state_files: list[Path], table_path: Path, summary_path: Path, hits_dir: str) -> list[dict]:
    """Write the per-protein table and ``SUMMARY.txt`` (what to open first); return the rows."""
    rows = summary_rows(state_files)
    with atomic_open(table_path) as handle:
        handle.write(tsv_text(rows, COLUMNS))
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    hits = sum(r["hits"] for r in ok)
    cache_hits = sum(r["cache_hits"] for r in ok)
    lookups = cache_hits + sum(r["cache_misses"] for r in ok)
    with atomic_open(summary_path) as handle:
        handle.write(f"per-protein table: {table_path}\n")
        handle.write(f"hits files (DPAM format): {hits_dir}/<protein>_iterativdDali_hits\n")
        handle.write(
            f"proteins: {len(rows)}, batches: {len(state_files)}, hits: {hits}, "
            f"template cache hit rate: {cache_hits / lookups if lookups else 0:.2f}\n"
        )
        if failed:
            handle.write(
                f"FAILED proteins: {len(failed)} (status and error in the table, logs in logs/dali/):\n"
            )
            for row in failed:
                handle.write(f"  {row['protein']}: {row['error']}\n")
        if ok and hits == 0:
            handle.write(
                "warning: no protein has any hit; check the aligner installation "
                "(DaliLite reports no hits when its DSSP step reads no residues)\n"
            )
    return rows


if "snakemake" in globals():
    from common import setup_logging

    setup_logging(snakemake.log[0])
    write_summary(
        [Path(p) for p in snakemake.input.states],
        Path(snakemake.output.table),
        Path(snakemake.output.summary),
        str(Path(snakemake.output.table).parent),
    )
