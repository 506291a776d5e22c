"""The per-file conversion table (every file, failed ones included) and SUMMARY.txt."""

import json
import os
from pathlib import Path

import pandas as pd
from common import atomic_open, setup_logging, write_table

COLUMNS = [
    "model",
    "simulation",
    "variable",
    "ilamb_variable",
    "status",
    "error",
    "warnings",
    "time_start",
    "time_end",
    "time_step",
    "n_steps",
    "units_from",
    "units_to",
    "unit_conversion",
    "time_units",
    "calendar",
    "ilamb_check",
    "seconds",
    "source",
    "source_sha256",
    "output",
]


def collect_statuses(status_files: list[str | os.PathLike], models_dir: str) -> pd.DataFrame:
    """One row per status file, sorted by model, simulation, variable; ``output`` is the published path."""
    rows = []
    for path in status_files:
        status = json.loads(Path(path).read_text())
        if status.get("status") == "ok":
            status["output"] = (
                f"{models_dir}/{status['model']}_{status['simulation']}/{status['ilamb_variable']}.nc"
            )
        else:
            status["output"] = ""
        rows.append({column: status.get(column, "") for column in COLUMNS})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "simulation", "variable"], kind="stable").reset_index(drop=True)


def summary_lines(table: pd.DataFrame, table_path: str, models_dir: str) -> list[str]:
    """``label: path`` lines for SUMMARY.txt, and the count of failures."""
    failed = table[table["status"] != "ok"]
    lines = [
        f"conversion table (every file, status and error): {table_path}",
        f"ILAMB model directories (one per model and simulation): {models_dir}",
        f"files converted: {int((table['status'] == 'ok').sum())} of {len(table)}",
    ]
    for _, row in failed.iterrows():
        lines.append(f"FAILED {row['model']} {row['simulation']} {row['variable']}: {row['error']}")
    for _, row in table[table["warnings"].fillna("") != ""].iterrows():
        lines.append(f"WARNING {row['model']} {row['simulation']} {row['variable']}: {row['warnings']}")
    return lines


def write_report(status_files, table_path, summary_path, models_dir) -> pd.DataFrame:
    table = collect_statuses(status_files, models_dir)
    write_table(table, table_path)
    with atomic_open(summary_path) as handle:
        handle.write("\n".join(summary_lines(table, str(table_path), models_dir)) + "\n")
    return table


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    write_report(
        [str(Path(stage) / "status.json") for stage in snakemake.input.stages],
        snakemake.output.table,
        snakemake.output.summary,
        snakemake.params.models_dir,
    )
