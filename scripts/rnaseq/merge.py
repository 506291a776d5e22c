"""Merge per-run kallisto outputs into matrices and summarise the batch.

Matrices follow ``amalgkit merge``: ``<species>_est_counts.tsv``, ``<species>_tpm.tsv`` and
``<species>_eff_length.tsv``, first column ``target_id``, one column per run. Unlike amalgkit
0.12 (which pastes columns by row position), runs are joined on ``target_id`` and a run whose
targets differ from the others is an error. ``metadata.tsv`` carries amalgkit's ``mapping_rate``.
"""

import json
import os
from pathlib import Path

import pandas as pd
from common import write_table

MATRICES = {"est_counts": "est_counts", "tpm": "tpm", "eff_length": "eff_length"}
QC_COLUMNS = [
    "run", "sample", "species", "layout", "status", "failed_stage", "error", "source", "spots", "n_processed", "n_pseudoaligned",
    "p_pseudoaligned", "fastq_bytes", "download_s", "transfer_s", "verify_s", "convert_s", "quant_s",
    "download_start", "download_end", "quant_start", "quant_end", "disk_slot_start", "fastq_deleted",
]  # fmt: skip


class MergeError(ValueError):
    """Per-run tables that cannot be merged; the message names the run."""


def succeeded(metrics_files: list[str | os.PathLike]) -> dict[str, Path]:
    """``{run: abundance.tsv}`` of the runs whose metrics say ``ok``, in the order given."""
    runs = {}
    for path in map(Path, metrics_files):
        metrics = json.loads(path.read_text())
        if metrics.get("status", "ok") == "ok":
            runs[metrics["run"]] = path.with_name(f"{metrics['run']}_abundance.tsv")
    return runs


def merge_abundances(abundances: dict[str, str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Read ``{run: abundance.tsv}`` and return one targets x runs matrix per quantity (with no
    run, a ``target_id`` column alone)."""
    if not abundances:
        return {key: pd.DataFrame({"target_id": pd.Series(dtype=str)}) for key in MATRICES}
    columns: dict[str, list[pd.Series]] = {key: [] for key in MATRICES}
    reference_ids = None
    reference_run = None
    for run, path in abundances.items():
        table = pd.read_csv(path, sep="\t", dtype={"target_id": str})
        missing = {"target_id", *MATRICES.values()} - set(table.columns)
        if missing:
            raise MergeError(f"run {run}: {path} lacks column(s) {', '.join(sorted(missing))}")
        if table["target_id"].duplicated().any():
            raise MergeError(f"run {run}: {path} has duplicate target_id values")
        ids = set(table["target_id"])
        if reference_ids is None:
            reference_ids, reference_run = ids, run
        elif ids != reference_ids:
            raise MergeError(
                f"run {run}: its targets differ from run {reference_run}'s "
                f"({len(ids ^ reference_ids)} differ): quantified against another index?"
            )
        table = table.set_index("target_id")
        for key, column in MATRICES.items():
            columns[key].append(table[column].rename(run))
    result = {}
    for key, series in columns.items():
        matrix = pd.concat(series, axis=1, join="outer").sort_index()
        matrix.index.name = "target_id"
        result[key] = matrix.reset_index()
    return result


def read_tx2gene(path: str | os.PathLike, transcripts: set[str]) -> pd.Series:
    """transcript -> gene from the first two columns of a TSV; a first line naming no transcript of
    the index is a header. Raises MergeError naming transcripts the table lacks."""
    table = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1], dtype=str, comment="#")
    if len(table) and table.iloc[0, 0] not in transcripts:
        table = table.iloc[1:]
    mapping = table.set_index(0)[1]
    missing = sorted(transcripts - set(mapping.index))
    if missing:
        raise MergeError(
            f"{path}: {len(missing)} transcript(s) of the index have no gene, e.g. {', '.join(missing[:3])}"
        )
    return mapping


def gene_matrix(matrix: pd.DataFrame, tx2gene: pd.Series) -> pd.DataFrame:
    """Sum a transcripts x runs matrix into genes x runs (est_counts and TPM add up by gene)."""
    values = matrix.set_index("target_id")
    genes = values.groupby(tx2gene.reindex(values.index).to_numpy()).sum().sort_index()
    genes.index.name = "gene_id"
    return genes.reset_index()


def write_matrices(matrices: dict[str, pd.DataFrame], outputs: dict[str, str | os.PathLike]) -> None:
    for key, path in outputs.items():
        write_table(matrices[key], path)


def qc_table(metrics_files: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per run: reads, pseudoaligned fraction, bytes, and the seconds of each stage."""
    rows = [json.loads(Path(p).read_text()) for p in metrics_files]
    for row in rows:
        row.setdefault("status", "ok")
    table = pd.DataFrame(rows)
    for column in QC_COLUMNS:
        if column not in table:
            table[column] = None
    table["error"] = table["error"].fillna("")
    table["failed_stage"] = table["failed_stage"].fillna("")
    return table[QC_COLUMNS].sort_values("run").reset_index(drop=True)


def amalgkit_metadata(qc: pd.DataFrame, extra: dict[str, dict] | None = None) -> pd.DataFrame:
    """The columns of amalgkit's ``merge/metadata.tsv`` that this workflow knows (runs that
    succeeded: the runs of the matrices), then ``extra`` (run -> the sheet's other columns, e.g.
    a filereport's study_accession)."""
    qc = qc[qc["status"] == "ok"]
    table = pd.DataFrame(
        {
            "run": qc["run"],
            "scientific_name": qc["species"],
            "sample": qc["sample"],
            "lib_layout": qc["layout"],
            "total_spots": qc["spots"],
            "mapping_rate": qc["p_pseudoaligned"],
        }
    ).reset_index(drop=True)
    if extra:
        other = pd.DataFrame([extra.get(run, {}) for run in table["run"]])
        other = other.drop(columns=[c for c in other.columns if c in table.columns])
        table = pd.concat([table, other], axis=1)
    return table


def plot_qc(qc: pd.DataFrame, path: str | os.PathLike) -> None:
    """Two panels per run: the pseudoaligned percentage, and seconds spent per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qc = qc[qc["status"] == "ok"].reset_index(drop=True)
    n = len(qc)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(6, 0.5 * n + 3), 7), sharex=True)
    x = range(n)
    colors = ["tab:blue" if layout == "paired" else "tab:orange" for layout in qc["layout"]]
    ax1.bar(x, qc["p_pseudoaligned"].astype(float), color=colors)
    ax1.set_ylabel("pseudoaligned (%)")
    ax1.set_ylim(0, 100)
    ax1.set_title("kallisto per run (blue: paired, orange: single)")
    bottom = pd.Series(0.0, index=qc.index)
    for column, label in (("transfer_s", "transfer"), ("verify_s", "verify"), ("convert_s", "SRA→FASTQ"),
                          ("quant_s", "kallisto")):  # fmt: skip
        values = pd.to_numeric(qc[column], errors="coerce").fillna(0.0)
        ax2.bar(x, values, bottom=bottom, label=label)
        bottom += values
    ax2.set_ylabel("seconds")
    ax2.legend(fontsize="small")
    ax2.set_xticks(list(x), qc["run"], rotation=60, ha="right", fontsize="small")
    fig.tight_layout()
    tmp = Path(path).with_name(".tmp-" + Path(path).name)
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def write_summary(path: str | os.PathLike, entries: dict[str, str]) -> None:
    """``label: path`` lines naming the files to open first."""
    tmp = Path(path).with_name(".tmp-" + Path(path).name)
    tmp.write_text("".join(f"{label}: {target}\n" for label, target in entries.items()))
    os.replace(tmp, path)


if "snakemake" in globals():
    from common import setup_logging

    log = setup_logging(snakemake.log[0])
    abundances = succeeded(snakemake.input.metrics)
    matrices = merge_abundances(abundances)
    write_matrices(matrices, {key: snakemake.output[key] for key in MATRICES})
    failed = len(snakemake.input.metrics) - len(abundances)
    log.info(
        "%s: %d targets x %d runs (%d failed runs left out; see qc/runs_qc.tsv)",
        snakemake.wildcards.species, len(matrices["tpm"]), len(abundances), failed,
    )  # fmt: skip
