"""Score every published model run with ILAMB's own ``ilamb-run`` (the consumer, end to end).

One ILAMB model per TRENDY model and simulation (``<model>_<Sx>``, as CABLE's own pipeline does),
listed in a model setup file with the published paths. ``ilamb-run`` drops a model whose
directory it cannot read without a word (its log says so at debug level only), so each model
run gets a row in ``models.tsv`` saying whether ILAMB scored it, and why not.
"""

import csv
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path

from common import atomic_open, run_command, setup_logging, write_table

log = logging.getLogger("hpcpipe.trendy")
SCORE_COLUMNS = ["model", "section", "variable", "source", "score", "value"]
MODEL_COLUMNS = ["model", "path", "in_ilamb", "n_scores", "mean_score", "reason"]


def model_runs(table: str | os.PathLike) -> dict[str, Path]:
    """``<model>_<Sx>`` -> its published directory, for every run with at least one converted file."""
    with open(table) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    runs = {}
    for row in rows:
        if row["status"] == "ok" and row["output"]:
            runs[f"{row['model']}_{row['simulation']}"] = Path(row["output"]).resolve().parent
    return dict(sorted(runs.items()))


def benchmark_variables(config: str | os.PathLike) -> set[str]:
    """Variable names (and alternates) an ILAMB benchmark configuration asks models for."""
    names = set()
    for line in Path(config).read_text().splitlines():
        match = re.match(r"\s*(variable|alternate_vars)\s*=\s*(.+)", line)
        if match:
            names |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", match.group(2)))
    return names


def write_model_setup(runs: dict[str, Path], path: str | os.PathLike) -> None:
    """ILAMB's ``--model_setup`` text format: one ``name, directory`` line per model."""
    with atomic_open(path) as handle:
        handle.write("# ILAMB model setup: one model per TRENDY model and simulation\n")
        for name, directory in runs.items():
            handle.write(f"{name}, {directory}\n")


def why_not_loaded(name: str, directory: Path) -> str:
    """The exception ILAMB's ``ModelResult`` raises on this directory (ilamb-run hides it)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    from ILAMB.ModelResult import ModelResult

    try:
        ModelResult(str(directory), modelname=name)
    except Exception as err:  # whatever ILAMB raises is the reason to report
        return f"ILAMB ModelResult fails: {type(err).__name__}: {err}"
    return "ILAMB loaded it here but ilamb-run did not"


def read_scores(build: Path) -> list[dict]:
    """Global score rows of ILAMB's ``scalar_database.csv``."""
    database = build / "scalar_database.csv"
    if not database.exists():
        return []
    with open(database) as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "model": row["Model"],
            "section": row["Section"],
            "variable": row["Variable"],
            "source": row["Source"],
            "score": row["ScalarName"],
            "value": float(row["Data"]),
        }
        for row in rows
        if row["ScalarType"] == "score" and row["Region"] == "global"
    ]


def run_ilamb(
    table,
    benchmarks,
    data_root,
    build,
    setup,
    scores_path,
    models_path,
    skip_plots: bool = True,
    timeout_s: float = 3600,
) -> list[dict]:
    """Run ``ilamb-run`` over every published model run; write scores.tsv and models.tsv, return the model rows."""
    import pandas as pd

    build = Path(build)
    runs = model_runs(table)
    write_model_setup(runs, setup)
    wanted = benchmark_variables(benchmarks)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    scores: list[dict] = []
    if runs:
        ilamb_run = Path(sys.executable).with_name("ilamb-run")
        command = [
            str(ilamb_run if ilamb_run.exists() else "ilamb-run"),
            "--config",
            str(Path(benchmarks).resolve()),
            "--model_setup",
            str(Path(setup).resolve()),
            "--build_dir",
            str(build.resolve()),
        ]
        if skip_plots:  # cartopy would download coastlines for the maps; the scores need none
            command.append("--skip_plots")
        env = {
            **os.environ,
            "ILAMB_ROOT": str(Path(data_root or Path(benchmarks).parent).resolve()),
            "MPLBACKEND": "Agg",
        }
        proc = run_command(command, timeout=timeout_s, cwd=build, env=env)
        log.info("ilamb-run:\n%s", proc.stdout[-4000:])
        scores = read_scores(build)
    write_table(pd.DataFrame(scores, columns=SCORE_COLUMNS), scores_path)
    models = []
    for name, directory in runs.items():
        values = [row["value"] for row in scores if row["model"] == name]
        finite = [v for v in values if math.isfinite(v)]
        has_benchmark = any(path.stem in wanted for path in directory.glob("*.nc"))
        if values and len(finite) == len(values):
            state, reason = "yes", ""
        elif values:
            state, reason = "no", f"{len(values) - len(finite)} of {len(values)} scores are not finite"
        elif not has_benchmark:
            state, reason = "not_benchmarked", f"none of its variables is in {benchmarks}"
        elif not (build / f"{name}.pkl").exists():
            state, reason = "no", why_not_loaded(name, directory)
        else:
            state, reason = "no", "loaded, but no score (no time overlap with the reference data?)"
        models.append(
            {
                "model": name,
                "path": str(directory),
                "in_ilamb": state,
                "n_scores": len(values),
                "mean_score": sum(finite) / len(finite) if finite else float("nan"),
                "reason": reason,
            }
        )
    write_table(pd.DataFrame(models, columns=MODEL_COLUMNS), models_path)
    return models


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    run_ilamb(
        snakemake.input.table,
        snakemake.input.benchmarks,
        snakemake.params.data_root,
        snakemake.output.build,
        snakemake.output.setup,
        snakemake.output.scores,
        snakemake.output.models,
        skip_plots=snakemake.params.skip_plots,
        timeout_s=snakemake.params.timeout_s,
    )
