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
    status_files: list[str | os.PathLike],
    models_dir: str,
    problems: list[dict] | None = None,
    static_fields: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per status file and per inventory problem, sorted by model, simulation, variable.

    ``output`` is the published path. ``problems`` are the inputs that got no job (see
    ``trendy.inventory.Problem``); ``static_fields`` maps each static ILAMB field (``sftlf``,
    ``areacella``) to its TRENDY names: a model run converted without one gets a ``no_files`` row.
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
    runs = {(r["model"], r["simulation"]) for r in rows if r["simulation"]}
    for model, simulation in sorted(runs):
        present = {r["ilamb_variable"] for r in rows if (r["model"], r["simulation"]) == (model, simulation)}
        present |= {
            ilamb
            for ilamb, names in (static_fields or {}).items()
            for r in rows
            if (r["model"], r["simulation"]) == (model, simulation) and r["variable"] in names
        }
        for ilamb, names in sorted((static_fields or {}).items()):
            if ilamb not in present:
                rows.append(
                    {
                        **dict.fromkeys(COLUMNS, ""),
                        "model": model,
                        "simulation": simulation,
                        "variable": "/".join(names),
                        "ilamb_variable": ilamb,
                        "status": "no_files",
                        "error": f"no {ilamb} file ({', '.join(names)}): ILAMB "
                        + (
                            "treats every cell as all land"
                            if ilamb == "sftlf"
                            else "computes cell areas from lat/lon bounds"
                        ),
                    }
                )
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "simulation", "variable"], kind="stable").reset_index(drop=True)


def summary_lines(table: pd.DataFrame, table_path: str, models_dir: str) -> list[str]:
    """``label: path`` lines for SUMMARY.txt, and the count of failures."""
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
    return lines


def write_report(
    status_files, table_path, summary_path, models_dir, problems=None, static_fields=None
) -> pd.DataFrame:
    """Write conversions.tsv and SUMMARY.txt; see :func:`collect_statuses`."""
    table = collect_statuses(status_files, models_dir, problems, static_fields)
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
        snakemake.params.problems,
        snakemake.params.static_fields,
    )
