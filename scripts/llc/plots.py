"""Figures of the promotion step: per-target loss traces, LLC by sampler, a gallery page."""

import html
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from common import atomic_open, atomic_path, setup_logging  # noqa: E402


def plot_target_traces(analysis_paths: list[str], trace_paths: list[str], out_png) -> None:
    """One panel per sampler: the LLC trace nβ(L - L0) of every chain, burn-in shaded, truth dashed."""
    analyses = [json.loads(Path(p).read_text()) for p in analysis_paths]
    fig, axes = plt.subplots(len(analyses), 1, figsize=(7, 2.6 * len(analyses)), squeeze=False)
    for ax, analysis, trace_path in zip(axes[:, 0], analyses, trace_paths, strict=True):
        with np.load(trace_path) as traces:
            llc = traces["nbeta"] * (traces["loss"] - traces["L0"])
        for chain in llc:
            ax.plot(chain, lw=0.5, alpha=0.8)
        ax.axvspan(0, analysis["sampler"]["burnin"], color="0.9", label="burn-in")
        ax.axhline(analysis["llc_mean"], color="k", lw=1, label=f"estimate {analysis['llc_mean']:.2f}")
        truth = analysis.get("llc_truth_finite_n") or analysis.get("llc_truth")
        if truth is not None:
            ax.axhline(truth, color="r", ls="--", lw=1, label=f"theory {truth:.2f}")
        ax.set_title(
            f"{analysis['target_name']} · {analysis['sampler_name']} (R-hat {analysis['r_hat']:.3f})",
            fontsize=9,
        )
        ax.set_xlabel("draw")
        ax.set_ylabel("nβ (L - L0)")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_llc_by_sampler(table: pd.DataFrame, out_png) -> None:
    """LLC estimate ± 2 SEM per target and sampler, with the theoretical value where known."""
    targets = list(dict.fromkeys(table["target_name"] + " (" + table["target_id"].str[:6] + ")"))
    samplers = list(dict.fromkeys(table["sampler_name"]))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(targets)), 3.8))
    width = 0.8 / max(1, len(samplers))
    labels = table["target_name"] + " (" + table["target_id"].str[:6] + ")"
    for j, sampler in enumerate(samplers):
        rows = table[table["sampler_name"] == sampler]
        xs = [targets.index(lab) + (j - (len(samplers) - 1) / 2) * width for lab in labels[rows.index]]
        ax.errorbar(xs, rows["llc_mean"], yerr=2 * rows["llc_sem"], fmt="o", label=sampler, capsize=3)
    for i, label in enumerate(targets):
        rows = table[labels == label]
        truth = rows["llc_truth_finite_n"].fillna(rows["llc_truth"]).dropna()
        if len(truth):
            ax.hlines(truth.iloc[0], i - 0.45, i + 0.45, colors="r", linestyles="--")
    ax.plot([], [], "r--", label="theory")
    ax.set_xticks(range(len(targets)), targets, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("LLC estimate (± 2 SEM)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_gallery(table: pd.DataFrame, figures: dict, out_html) -> None:
    """index.html: the LLC-by-sampler figure, the runs table, then each target's traces."""
    base = Path(out_html).parent
    parts = ["<!doctype html><meta charset='utf-8'><title>LLC gallery</title>", "<h1>LLC estimates</h1>"]
    parts.append(f"<img src='{html.escape(os.path.relpath(figures['by_sampler'], base))}'>")
    columns = [
        "target_name",
        "sampler_name",
        "llc_mean",
        "llc_sem",
        "llc_truth",
        "llc_truth_finite_n",
        "relative_error",
        "r_hat",
        "ess",
        "wall_time_s",
    ]
    parts.append(table[[c for c in columns if c in table]].to_html(index=False, float_format="%.4g"))
    for target_id, png in figures["traces"].items():
        name = table.loc[table["target_id"] == target_id, "target_name"].iloc[0]
        parts.append(f"<h2>{html.escape(name)} <small>{target_id}</small></h2>")
        parts.append(f"<img src='{html.escape(os.path.relpath(png, base))}'>")
    with atomic_open(out_html) as handle:
        handle.write("\n".join(parts) + "\n")


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    if snakemake.rule == "llc_plot_traces":
        plot_target_traces(list(snakemake.input.analyses), list(snakemake.input.traces), snakemake.output.png)
    elif snakemake.rule == "llc_plot_by_sampler":
        plot_llc_by_sampler(pd.read_parquet(snakemake.input.parquet), snakemake.output.png)
    else:
        write_gallery(
            pd.read_parquet(snakemake.input.parquet),
            {
                "by_sampler": snakemake.input.by_sampler,
                "traces": dict(zip(snakemake.params.target_ids, snakemake.input.traces, strict=True)),
            },
            snakemake.output.html,
        )
