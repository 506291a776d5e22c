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


def collect_statuses(
    status_files: list[str | os.PathLike], models_dir: str, problems: list[dict] | None = None
) -> pd.DataFrame:
    """One row per status file and per inventory problem, sorted by model, simulation, variable.

    ``output`` is the published path. ``problems`` are the inputs that got no job (see
    ``trendy.inventory.Problem``): a missing model, a dangling symlink, a case-only clash.
    """
    rows = [{column: problem.get(column, "") for column in COLUMNS} for problem in problems or []]
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


RUN_COLUMNS = ["model", "simulation", "files_ok", "files_failed", "sftlf", "areacella", "note"]
WITHOUT = {
    "sftlf": "no land fraction: ILAMB treats every cell as all land",
    "areacella": "no cell area: ILAMB computes areas from lat/lon bounds",
}


def model_runs(table: pd.DataFrame, static_fields: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per model run (model and simulation): its files, and whether each static field is there.

    ``static_fields`` maps each static ILAMB field (``sftlf``, ``areacella``) to the TRENDY names
    that provide it; a run without one is said so in ``note`` (ILAMB then falls back silently).
    """
    rows = []
    files = table[table["simulation"] != ""]
    for (model, simulation), group in files.groupby(["model", "simulation"], sort=True):
        row = {
            "model": model,
            "simulation": simulation,
            "files_ok": int((group["status"] == "ok").sum()),
            "files_failed": int((group["status"] == "failed").sum()),
        }
        notes = []
        for field in ("sftlf", "areacella"):
            names = (static_fields or {}).get(field)
            if names is None:
                row[field] = ""
                continue
            mine = group[group["ilamb_variable"].eq(field) | group["variable"].isin(names)]
            row[field] = "ok" if (mine["status"] == "ok").any() else ("failed" if len(mine) else "missing")
            if row[field] != "ok":
                notes.append(f"{WITHOUT[field]} ({', '.join(names)}: {row[field]})")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def summary_lines(
    table: pd.DataFrame, table_path: str, models_dir: str, runs: pd.DataFrame | None = None
) -> list[str]:
    """``label: path`` lines for SUMMARY.txt, the count of failures, and a line per problem or warning."""
    files = table[table["status"].isin(["ok", "failed"])]
    lines = [
        f"conversion table (every file, status and error): {table_path}",
        f"ILAMB model directories (one per model and simulation): {models_dir}",
        f"files converted: {int((files['status'] == 'ok').sum())} of {len(files)}",
    ]
    for status, label in [("failed", "FAILED"), ("no_files", "NO FILES"), ("skipped", "SKIPPED")]:
        for _, row in table[table["status"] == status].iterrows():
            what = " ".join(str(x) for x in (row["model"], row["simulation"], row["variable"]) if x)
            lines.append(f"{label} {what}: {row['error']}")
    for _, row in table[table["warnings"].fillna("") != ""].iterrows():
        lines.append(f"WARNING {row['model']} {row['simulation']} {row['variable']}: {row['warnings']}")
    if runs is not None:
        for _, row in runs[runs["note"] != ""].iterrows():
            lines.append(f"STATIC {row['model']} {row['simulation']}: {row['note']}")
    return lines


def write_report(
    status_files, table_path, summary_path, models_dir, problems=None, static_fields=None, runs_path=None
) -> pd.DataFrame:
    """Write conversions.tsv, model_runs.tsv and SUMMARY.txt; see :func:`collect_statuses`, :func:`model_runs`."""
    table = collect_statuses(status_files, models_dir, problems)
    runs = model_runs(table, static_fields)
    write_table(table, table_path)
    if runs_path:
        write_table(runs, runs_path)
    with atomic_open(summary_path) as handle:
        handle.write("\n".join(summary_lines(table, str(table_path), models_dir, runs)) + "\n")
    return table


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    write_report(
        [str(Path(stage) / "status.json") for stage in snakemake.input.stages],
        snakemake.output.table,
        snakemake.output.summary,
        snakemake.params.models_dir,
        snakemake.params.problems,
        snakemake.params.static_fields,
        snakemake.output.runs,
    )
