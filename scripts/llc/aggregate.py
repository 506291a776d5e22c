"""Stage C: one row per run (names, status, target and sampler config, every metric, the
truth and its multiplicity, the relative error, the flags) into ``llc_runs.parquet``, a TSV,
and SUMMARY.txt.

Every run that finished is a row, failed runs too (``status`` failed, ``error`` why), so one
diverging run never hides the others' results; ``llc_check`` fails the workflow afterwards.
Display names come from the rule's params (the current config), not from the runs' files:
renaming a target or sampler rewrites this table and nothing upstream.
"""

import json
from pathlib import Path

import pandas as pd
from common import atomic_open, setup_logging, write_json, write_table

from llc.flags import run_flags
from llc.tables import flatten

METRIC_ORDER = [
    "run_id",
    "target_id",
    "target_name",
    "family",
    "sampler_name",
    "kind",
    "status",
    "error",
    "flags",
    "llc_mean",
    "llc_truth",
    "llc_truth_multiplicity",
    "llc_truth_finite_n",
    "relative_error",
    "llc_std",
    "llc_sem",
    "r_hat",
    "ess",
]


def run_row(analysis: dict, meta: dict, names: dict, thresholds: dict) -> dict:
    """One flat record of a run: names, status, metrics, flags, then ``target.*``/``sampler.*`` config."""
    row = {k: v for k, v in analysis.items() if not isinstance(v, dict | list)}
    label = names["runs"].get(analysis["run_id"], {})
    row["target_name"] = names["targets"].get(analysis["target_id"], analysis["target_id"])
    row["sampler_name"] = label.get("sampler_name", analysis["sampler"]["kind"])
    row["calibration_id"] = label.get("calibration_id")
    row["family"] = meta["config"]["family"]
    row["kind"] = analysis["sampler"]["kind"]
    row["status"] = analysis.get("status", "ok")
    if row["status"] == "ok":
        flags = run_flags(analysis, thresholds)
        row["flags"] = ",".join(flags)
        row["flag_reasons"] = json.dumps(flags)
        row["llc_per_chain"] = json.dumps(analysis["llc_per_chain"])
    else:
        row["flags"], row["flag_reasons"] = "", "{}"
    row.update(flatten(meta["config"], "target"))
    row.update(flatten(analysis["sampler"], "sampler"))
    if meta.get("status", "ok") == "ok":
        row["target.L0_build"] = meta["L0"]
        row["target.grad_norm_at_w_star"] = meta["grad_norm_at_w_star"]
    return row


def aggregate_runs(
    analysis_paths: list[str], meta_paths: list[str], names: dict, thresholds: dict
) -> pd.DataFrame:
    """Table of all runs, failed ones included, ordered by target then sampler."""
    metas = {}
    for path in meta_paths:
        meta = json.loads(Path(path).read_text())
        metas[meta["target_id"]] = meta
    rows = []
    for path in analysis_paths:
        analysis = json.loads(Path(path).read_text())
        rows.append(run_row(analysis, metas[analysis["target_id"]], names, thresholds))
    table = pd.DataFrame(rows)
    for column in METRIC_ORDER:
        if column not in table.columns:
            table[column] = None
    table = table[METRIC_ORDER + [c for c in table.columns if c not in METRIC_ORDER]]
    return table.sort_values(["target_name", "target_id", "sampler_name"]).reset_index(drop=True)


def _number(value, fmt: str) -> str:
    return format(value, fmt) if pd.notna(value) else "n/a"


def summary_lines(table: pd.DataFrame, paths: dict) -> list[str]:
    """SUMMARY.txt: where to look, counts, then one line per run with its flags or its error."""
    lines = [f"{label}: {path}" for label, path in paths.items()]
    failed = table[table["status"] != "ok"]
    flagged = table[(table["status"] == "ok") & (table["flags"] != "")]
    lines.append(
        f"{len(table)} runs: {len(table) - len(failed)} finished ({len(flagged)} flagged), {len(failed)} failed"
    )
    for row in table.itertuples():
        head = f"# {row.target_name} {row.sampler_name} (run {row.run_id}, target {row.target_id})"
        if row.status != "ok":
            lines.append(f"{head}: FAILED: {row.error}")
            continue
        truth = row.llc_truth_finite_n if pd.notna(row.llc_truth_finite_n) else row.llc_truth
        truth_text = "unknown"
        if pd.notna(truth):
            truth_text = f"{truth:.3f}"
            if pd.notna(row.llc_truth_multiplicity):
                truth_text += f", multiplicity {int(row.llc_truth_multiplicity)}"
        err = f"{row.relative_error:+.1%}" if pd.notna(row.relative_error) else "n/a"
        line = (
            f"{head}: llc {row.llc_mean:.3f} ± {_number(row.llc_sem, '.3f')}"
            f" (truth {truth_text}, error {err}, R-hat {_number(row.r_hat, '.3f')}, ESS {_number(row.ess, '.0f')}"
        )
        if pd.notna(getattr(row, "acceptance_rate", None)):
            line += f", acceptance {row.acceptance_rate:.2f}, divergences {int(row.divergences)}"
        if pd.notna(getattr(row, "mala_acceptance", None)):
            line += f", MALA acceptance {row.mala_acceptance:.2f}"
        lines.append(line + ")")
        for flag, reason in json.loads(row.flag_reasons).items():
            lines.append(f"    FLAG {flag}: {reason}")
    return lines


if "snakemake" in globals():
    log = setup_logging(snakemake.log[0])
    result = aggregate_runs(
        [*snakemake.input.analyses, *snakemake.input.calibrated],
        list(snakemake.input.metas),
        snakemake.params.names,
        snakemake.params.flags,
    )
    write_table(result, snakemake.output.parquet)
    write_table(result, snakemake.output.tsv)
    with atomic_open(snakemake.output.summary) as handle:
        handle.write(
            "\n".join(
                summary_lines(
                    result, {"runs table": snakemake.output.tsv, "parquet": snakemake.output.parquet}
                )
            )
            + "\n"
        )
    write_json(
        snakemake.output.status,
        {"runs": len(result), "failed": result.loc[result["status"] != "ok", "run_id"].tolist()},
    )
    log.info("%d runs aggregated, %d failed", len(result), int((result["status"] != "ok").sum()))
