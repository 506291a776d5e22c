"""Stage C: one row per run (target and sampler config, every metric, the truth, the
relative error) into ``llc_runs.parquet`` and a TSV, and SUMMARY.txt."""

import json
from pathlib import Path

import pandas as pd
from common import setup_logging, write_table

from llc.tables import flatten

METRIC_ORDER = [
    "run_id",
    "target_id",
    "target_name",
    "family",
    "sampler_name",
    "kind",
    "llc_mean",
    "llc_truth",
    "llc_truth_finite_n",
    "relative_error",
    "llc_std",
    "llc_sem",
    "r_hat",
    "ess",
]


def run_row(analysis: dict, meta: dict) -> dict:
    """One flat record of a run: metrics, then ``target.*`` and ``sampler.*`` config columns."""
    row = {k: v for k, v in analysis.items() if not isinstance(v, dict | list)}
    row["family"] = meta["config"]["family"]
    row["kind"] = analysis["sampler"]["kind"]
    row["llc_per_chain"] = json.dumps(analysis["llc_per_chain"])
    row.update(flatten(meta["config"], "target"))
    row.update(flatten(analysis["sampler"], "sampler"))
    row["target.L0_build"] = meta["L0"]
    row["target.grad_norm_at_w_star"] = meta["grad_norm_at_w_star"]
    return row


def aggregate_runs(analysis_paths: list[str], meta_paths: list[str]) -> pd.DataFrame:
    """Table of all runs, ordered by target then sampler."""
    metas = {}
    for path in meta_paths:
        meta = json.loads(Path(path).read_text())
        metas[meta["target_id"]] = meta
    rows = []
    for path in analysis_paths:
        analysis = json.loads(Path(path).read_text())
        rows.append(run_row(analysis, metas[analysis["target_id"]]))
    table = pd.DataFrame(rows)
    first = [c for c in METRIC_ORDER if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.sort_values(["target_name", "target_id", "sampler_name"]).reset_index(drop=True)


def summary_lines(table: pd.DataFrame, paths: dict) -> list[str]:
    """SUMMARY.txt: where to look, then one line per run."""
    lines = [f"{label}: {path}" for label, path in paths.items()]
    for row in table.itertuples():
        truth = row.llc_truth_finite_n if pd.notna(row.llc_truth_finite_n) else row.llc_truth
        err = f"{row.relative_error:+.1%}" if pd.notna(row.relative_error) else "n/a"
        lines.append(
            f"# {row.target_name} {row.sampler_name}: llc {row.llc_mean:.3f} ± {row.llc_sem:.3f}"
            f" (truth {f'{truth:.3f}' if pd.notna(truth) else 'unknown'}, error {err}, R-hat {row.r_hat:.3f})"
        )
    return lines


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    result = aggregate_runs(list(snakemake.input.analyses), list(snakemake.input.metas))
    write_table(result, snakemake.output.parquet)
    write_table(result, snakemake.output.tsv)
    Path(snakemake.output.summary).write_text(
        "\n".join(
            summary_lines(result, {"runs table": snakemake.output.tsv, "parquet": snakemake.output.parquet})
        )
        + "\n"
    )
    log.info("%d runs aggregated", len(result))
