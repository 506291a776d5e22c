"""Rule ``llc_check``: fail the workflow, naming them, when runs failed.

A failed run still writes its analysis.json (status failed, the error) so that the table of
the others is written. Here the failure reaches the user: the exit code says something failed,
the message names each run (id, target, sampler) and its error, and the failed runs' files
(and those of a target that failed to build) are removed, so that the next run redoes exactly
those, as Snakemake does with a failed job. A missing input alone does not make Snakemake
redo a job whose outputs exist (that is how deleted temp files behave), so the aggregate's
small status file is removed too: the table (parquet, TSV, SUMMARY) stays for the user to
read, and the next run redoes the aggregate, hence first the failed runs.
"""

from pathlib import Path

import pandas as pd
from common import atomic_open, fail_naming, setup_logging


def check_runs(
    table: pd.DataFrame, results_dir: Path, out_path: Path, status_path: Path | None = None
) -> list[str]:
    """Return one line per failed run (removing its files and the aggregate's ``status_path``);
    write ``out_path`` only when none failed."""
    problems = []
    for row in table[table["status"] != "ok"].itertuples():
        problems.append(
            f"run {row.run_id} (target '{row.target_name}' {row.target_id}, sampler '{row.sampler_name}') "
            f"failed: {row.error} (log: logs/llc/run_sampler/{row.run_id}.log)"
        )
        for name in ("analysis.json", "traces.npz"):
            (results_dir / "runs" / row.run_id / name).unlink(missing_ok=True)
        meta = results_dir / "targets" / row.target_id / "meta.json"
        if meta.exists() and '"status": "failed"' in meta.read_text():
            for name in ("meta.json", "data.npz", "params.npz"):
                (results_dir / "targets" / row.target_id / name).unlink(missing_ok=True)
    if problems and status_path is not None:
        status_path.unlink(missing_ok=True)
    if not problems:
        flagged = int((table["flags"].fillna("") != "").sum())
        with atomic_open(out_path) as handle:
            handle.write(f"{len(table)} runs finished ({flagged} flagged: see SUMMARY.txt)\n")
    return problems


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    _problems = check_runs(
        pd.read_parquet(snakemake.input.parquet),
        Path(snakemake.params.results_dir),
        Path(snakemake.output[0]),
        Path(snakemake.params.status),
    )
    fail_naming(
        _problems,
        f"{len(_problems)} llc run(s) failed; the table lists them, their files are removed, "
        "so the next run redoes them",
    )
