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


def running_mean(values: np.ndarray) -> np.ndarray:
    """Running mean along the last axis."""
    return np.cumsum(values, axis=-1) / np.arange(1, values.shape[-1] + 1)


def plot_target_traces(table: pd.DataFrame, trace_paths: list[str], out_png) -> None:
    """One row per run of a target: the LLC trace nβ(L - L0) of every chain (burn-in shaded) and
    each chain's running mean after burn-in with a chain legend; truth dashed, flags in red."""
    traces = {Path(p).parent.name: p for p in trace_paths}
    rows = [r for r in table.to_dict("records") if r["run_id"] in traces]
    fig, axes = plt.subplots(max(1, len(rows)), 2, figsize=(11, 2.8 * max(1, len(rows))), squeeze=False)
    for (ax_trace, ax_mean), row in zip(axes, rows, strict=False):
        title = f"{row['target_name']} · {row['sampler_name']} ({row['run_id']})"
        if row["status"] != "ok":
            ax_trace.text(0.5, 0.5, f"FAILED: {row['error']}", ha="center", va="center", wrap=True, color="r")
            ax_trace.set_title(title, fontsize=9)
            ax_mean.axis("off")
            continue
        with np.load(traces[row["run_id"]]) as npz:
            llc = npz["nbeta"] * (npz["loss"] - npz["L0"])
            burnin = int(npz["burnin"])
        for index, chain in enumerate(llc):
            ax_trace.plot(chain, lw=0.5, alpha=0.8)
            means = running_mean(chain[burnin:])
            ax_mean.plot(np.arange(burnin, len(chain)), means, lw=1, label=f"chain {index}: {means[-1]:.3g}")
        ax_trace.axvspan(0, burnin, color="0.9", label="burn-in")
        truth = row.get("llc_truth_finite_n")
        truth = row.get("llc_truth") if truth is None or pd.isna(truth) else truth
        for ax in (ax_trace, ax_mean):
            ax.axhline(row["llc_mean"], color="k", lw=1, label=f"estimate {row['llc_mean']:.3g}")
            if truth is not None and pd.notna(truth):
                ax.axhline(truth, color="r", ls="--", lw=1, label=f"theory {truth:.3g}")
            ax.set_xlabel("recorded draw")
            ax.legend(fontsize=6, loc="upper right")
        ax_trace.set_ylabel("nβ (L - L0)")
        ax_mean.set_ylabel("running mean per chain")
        ax_trace.set_title(f"{title} R-hat {row['r_hat']:.3f}, ESS {row['ess']:.0f}", fontsize=9)
        flags = row.get("flags") or ""
        ax_mean.set_title(f"flags: {flags}" if flags else "no flags", fontsize=9, color="r" if flags else "g")
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_calibration(pilots: list[dict], chosen: dict, out_png, title: str) -> None:
    """Calibration evidence: MALA acceptance and pilot LLC against the step size, one line per
    (nβ, γ) tried, pass/fail marked, the chosen pilot starred."""
    series: dict[tuple, list[dict]] = {}
    for p in pilots:
        series.setdefault((p.get("nbeta"), p.get("gamma")), []).append(p)
    fig, (ax_acc, ax_llc) = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, key, label in [(ax_acc, "mala_acceptance", "MALA acceptance"), (ax_llc, "llc_mean", "pilot LLC")]:
        for (nbeta, gamma), group in series.items():
            values = [p.get(key, np.nan) for p in group]
            name = "" if nbeta is None else f"nβ {nbeta:.4g}, γ {gamma:.3g}"
            ax.plot([p["step_size"] for p in group], values, "-", label=name if len(series) > 1 else None)
            for p, v in zip(group, values, strict=True):
                ax.plot(p["step_size"], v, "o" if p["passed"] else "x", color="g" if p["passed"] else "r")
                if (p["step_size"], nbeta, gamma) == (
                    chosen["step_size"],
                    chosen.get("nbeta"),
                    chosen.get("gamma"),
                ):
                    ax.plot(p["step_size"], v, "*", ms=14, mfc="none", color="b")
        ax.axvline(chosen["step_size"], color="b", ls=":", label=f"chosen ε {chosen['step_size']:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("step size ε")
        ax.set_ylabel(label)
    ax_acc.plot([], [], "go", label="passed")
    ax_acc.plot([], [], "rx", label="failed")
    ax_acc.legend(fontsize=7)
    ax_llc.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def plot_llc_by_sampler(table: pd.DataFrame, out_png) -> None:
    """LLC estimate ± 2 SEM per target and sampler, with the theoretical value where known;
    flagged runs drawn hollow."""
    table = table[table["status"] == "ok"].reset_index(drop=True)
    targets = list(dict.fromkeys(table["target_name"] + " (" + table["target_id"].str[:6] + ")"))
    samplers = list(dict.fromkeys(table["sampler_name"]))
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(targets)), 3.8))
    width = 0.8 / max(1, len(samplers))
    labels = table["target_name"] + " (" + table["target_id"].str[:6] + ")"
    for j, sampler in enumerate(samplers):
        rows = table[table["sampler_name"] == sampler]
        xs = [targets.index(lab) + (j - (len(samplers) - 1) / 2) * width for lab in labels[rows.index]]
        bars = ax.errorbar(xs, rows["llc_mean"], yerr=2 * rows["llc_sem"], fmt="o", label=sampler, capsize=3)
        flagged = (rows["flags"].fillna("") != "").to_numpy()
        if flagged.any():
            ax.plot(
                np.asarray(xs)[flagged],
                rows["llc_mean"][flagged],
                "o",
                mfc="white",
                color=bars[0].get_color(),
            )
    for i, label in enumerate(targets):
        rows = table[labels == label]
        truth = rows["llc_truth_finite_n"].fillna(rows["llc_truth"]).dropna()
        if len(truth):
            ax.hlines(truth.iloc[0], i - 0.45, i + 0.45, colors="r", linestyles="--")
    ax.plot([], [], "r--", label="theory")
    ax.plot([], [], "o", mfc="white", color="0.3", label="flagged")
    ax.set_xticks(range(len(targets)), targets, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("LLC estimate (± 2 SEM)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_gallery(table: pd.DataFrame, figures: dict, out_html) -> None:
    """index.html: the LLC-by-sampler figure, the runs table with flags, each target's traces,
    then each calibration's figure and choice."""
    base = Path(out_html).parent
    parts = ["<!doctype html><meta charset='utf-8'><title>LLC gallery</title>", "<h1>LLC estimates</h1>"]
    parts.append(f"<img src='{html.escape(os.path.relpath(figures['by_sampler'], base))}'>")
    columns = [
        "target_name",
        "sampler_name",
        "status",
        "llc_mean",
        "llc_sem",
        "llc_truth",
        "llc_truth_multiplicity",
        "llc_truth_finite_n",
        "relative_error",
        "r_hat",
        "ess",
        "acceptance_rate",
        "divergences",
        "mala_acceptance",
        "flags",
        "error",
        "wall_time_s",
    ]
    parts.append(table[[c for c in columns if c in table]].to_html(index=False, float_format="%.4g"))
    flagged = table[(table["status"] == "ok") & (table["flags"].fillna("") != "")]
    if len(flagged):
        parts.append("<h2>Flags</h2><ul>")
        for row in flagged.itertuples():
            for flag, reason in json.loads(row.flag_reasons).items():
                parts.append(
                    f"<li><b>{html.escape(row.target_name)} · {html.escape(row.sampler_name)}</b>: "
                    f"{html.escape(flag)}: {html.escape(reason)}</li>"
                )
        parts.append("</ul>")
    for target_id, png in figures["traces"].items():
        names = table.loc[table["target_id"] == target_id, "target_name"]
        name = names.iloc[0] if len(names) else target_id
        parts.append(f"<h2>{html.escape(name)} <small>{target_id}</small></h2>")
        parts.append(f"<img src='{html.escape(os.path.relpath(png, base))}'>")
    for record_path, png in figures.get("calibrations", []):
        record = json.loads(Path(record_path).read_text())
        chosen = record["chosen"]
        parts.append(f"<h2>Calibration {html.escape(record['calibration_id'])}</h2>")
        searched = "".join(
            f", {label} {chosen[key]:.4g}"
            for key, label in (("nbeta", "nβ"), ("gamma", "γ"))
            if key in chosen
        )
        parts.append(
            f"<p>target {html.escape(record['target_id'])}: chosen step size {chosen['step_size']:.3g}"
            f"{searched} ({'largest passing step' if chosen['passed'] else 'NO pilot passed: smallest step tried'};"
            f" {len(record['pilots'])} pilots)</p>"
        )
        parts.append(f"<img src='{html.escape(os.path.relpath(png, base))}'>")
    with atomic_open(out_html) as handle:
        handle.write("\n".join(parts) + "\n")


if "snakemake" in globals():
    setup_logging(snakemake.log[0])
    if snakemake.rule == "llc_plot_traces":
        plot_target_traces(
            pd.read_parquet(snakemake.input.parquet), list(snakemake.input.traces), snakemake.output.png
        )
    elif snakemake.rule == "llc_plot_by_sampler":
        plot_llc_by_sampler(pd.read_parquet(snakemake.input.parquet), snakemake.output.png)
    else:
        write_gallery(
            pd.read_parquet(snakemake.input.parquet),
            {
                "by_sampler": snakemake.input.by_sampler,
                "traces": dict(zip(snakemake.params.target_ids, snakemake.input.traces, strict=True)),
                "calibrations": list(
                    zip(snakemake.input.calibrations, snakemake.input.calibration_figures, strict=True)
                ),
            },
            snakemake.output.html,
        )
