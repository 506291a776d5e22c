"""Stage 5, the figure: ranking scores per group, drawn from the chunk states beside af3_tabulate."""

import logging

from common import atomic_path, setup_logging

from af3.tabulate import confidence_table, load_records

log = logging.getLogger("hpcpipe")


def plot_ranking(table: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({r["group"] for r in table})
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(groups) + 2), 4))
    data = [
        [max(r["ranking_score"], -0.5) for r in table if r["group"] == g and r["ranking_score"] is not None]
        for g in groups
    ]
    if groups:
        ax.boxplot(data, tick_labels=groups, showfliers=False)
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=10, alpha=0.6)
    ax.set_ylabel("ranking score (clipped at -0.5; clashes score -100)")
    ax.set_title(f"AF3 ranking scores per group ({len(table)} jobs)")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def main(smk) -> None:
    setup_logging(smk.log[0])
    table = confidence_table(load_records(list(smk.input.states)))
    plot_ranking(table, smk.output.plot)
    log.info("plotted the ranking scores of %d jobs", len(table))


if "snakemake" in globals():
    main(snakemake)
