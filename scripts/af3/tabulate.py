"""Stage 5: one table of every organized job's summary confidences, the MSA index and a plot.

Reads the per-chunk states written by :mod:`af3.organize` (not the 13,700 job directories).
"""

import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
from common import setup_logging, write_json, write_table

log = logging.getLogger("hpcpipe")

TABLE_COLUMNS = [
    "group",
    "job",
    "layout",
    "ranking_score",
    "ptm",
    "iptm",
    "fraction_disordered",
    "has_clash",
    "chain_iptm",
    "chain_pair_iptm",
    "n_msa_refs",
    "data_json_bytes",
    "data_json_organized_bytes",
    "seed_members",
    "seed_raw_bytes",
    "seed_archive_bytes",
]


def load_records(state_files: list[str]) -> list[dict]:
    records = []
    for path in state_files:
        with open(path) as handle:
            records.extend(json.load(handle)["jobs"])
    return sorted(records, key=lambda r: (r["group"], r["job"]))


def confidence_table(records: list[dict]) -> pd.DataFrame:
    """One row per organized job; list-valued AF3 fields are kept as JSON text."""
    rows = []
    for r in records:
        s = r["summary"]
        rows.append(
            {
                "group": r["group"],
                "job": r["job"],
                "layout": r["layout"],
                **{k: s.get(k) for k in ("ranking_score", "ptm", "iptm", "fraction_disordered", "has_clash")},
                "chain_iptm": json.dumps(s.get("chain_iptm")) if s.get("chain_iptm") is not None else "",
                "chain_pair_iptm": json.dumps(s.get("chain_pair_iptm"))
                if s.get("chain_pair_iptm") is not None
                else "",
                "n_msa_refs": len(r["msa"]),
                "data_json_bytes": r["data_json_bytes"],
                "data_json_organized_bytes": r["data_json_organized_bytes"],
                "seed_members": r["seeds"]["members"],
                "seed_raw_bytes": r["seeds"]["raw_bytes"],
                "seed_archive_bytes": r["seeds"]["archive_bytes"],
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["has_clash"] = table["has_clash"].astype(float)
    return table


def group_table(table: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Per group: job count and ranking score statistics; an ``overall`` row last."""

    def stats(frame: pd.DataFrame, name: str) -> dict:
        score = frame["ranking_score"].astype(float)
        return {
            "group": name,
            "jobs": len(frame),
            "ranking_score_mean": round(score.mean(), 4) if len(frame) else None,
            "ranking_score_median": round(score.median(), 4) if len(frame) else None,
            "ranking_score_max": score.max() if len(frame) else None,
            "iptm_mean": round(frame["iptm"].astype(float).mean(), 4) if len(frame) else None,
            "with_clash": int((frame["has_clash"] > 0).sum()),
        }

    rows = [stats(frame, name) for name, frame in table.groupby("group", sort=True)]
    empty = problems[problems["status"] == "empty group"]["item"].str.removeprefix("group ")
    rows += [stats(table.iloc[0:0], name) for name in empty]
    rows.append(stats(table, "overall"))
    return pd.DataFrame(rows)


def msa_index(records: list[dict]) -> pd.DataFrame:
    """Job + chain + field -> sha256 of the stored text, with sizes."""
    rows = [
        {
            "group": r["group"],
            "job": r["job"],
            "chain_ids": v["chain_ids"],
            "field": v["field"],
            "sha256": v["sha256"],
            "raw_bytes": v["raw_bytes"],
            "stored_bytes": v["stored_bytes"],
            "reference": v["stored_path"],
        }
        for r in records
        for v in r["msa"]
    ]
    return pd.DataFrame(
        rows,
        columns=["group", "job", "chain_ids", "field", "sha256", "raw_bytes", "stored_bytes", "reference"],
    )


def archive_stats(records: list[dict], index: pd.DataFrame) -> dict:
    """Bytes before and after: MSA store (dedup + compression) and seed archives."""
    distinct = index.drop_duplicates("sha256")
    msa_raw = int(index["raw_bytes"].sum())
    msa_stored = int(distinct["stored_bytes"].sum())
    seed_raw = sum(r["seeds"]["raw_bytes"] for r in records)
    seed_arch = sum(r["seeds"]["archive_bytes"] for r in records)
    return {
        "jobs": len(records),
        "msa_values": len(index),
        "msa_distinct": len(distinct),
        "msa_raw_bytes": msa_raw,
        "msa_distinct_raw_bytes": int(distinct["raw_bytes"].sum()),
        "msa_stored_bytes": msa_stored,
        "msa_ratio": round(msa_raw / msa_stored, 2) if msa_stored else None,
        "msa_dedup_ratio": round(msa_raw / distinct["raw_bytes"].sum(), 2) if len(distinct) else None,
        "msa_kept_inline": sum(r["msa_kept_inline"] for r in records),
        "seed_raw_bytes": seed_raw,
        "seed_archive_bytes": seed_arch,
        "seed_ratio": round(seed_raw / seed_arch, 2) if seed_arch else None,
    }


def sweep_store_leftovers(store: Path, older_than_s: float = 0) -> int:
    """Remove ``.tmp-*`` files a killed job left in the MSA store (no chunk job runs now)."""
    removed = 0
    if not store.is_dir():
        return 0
    now = time.time()
    for sub in os.scandir(store):
        if sub.is_dir():
            for f in os.scandir(sub.path):
                if f.name.startswith(".tmp-") and now - f.stat().st_mtime >= older_than_s:
                    os.unlink(f.path)
                    removed += 1
    return removed


def plot_ranking(table: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted(table["group"].unique())
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(groups) + 2), 4))
    data = [table.loc[table["group"] == g, "ranking_score"].astype(float).clip(lower=-0.5) for g in groups]
    if groups:
        ax.boxplot(data, tick_labels=groups, showfliers=False)
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=10, alpha=0.6)
    ax.set_ylabel("ranking score (clipped at -0.5; clashes score -100)")
    ax.set_title(f"AF3 ranking scores per group ({len(table)} jobs)")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(smk) -> None:
    setup_logging(smk.log[0])
    removed = sweep_store_leftovers(Path(smk.params.store))
    if removed:
        log.info("removed %d temporary files left in the MSA store by a killed job", removed)
    records = load_records(list(smk.input.states))
    problems = pd.read_csv(smk.input.problems, sep="\t", dtype=str, keep_default_na=False)
    table = confidence_table(records)
    write_table(table, smk.output.parquet)
    write_table(table, smk.output.tsv)
    write_table(group_table(table, problems), smk.output.groups)
    index = msa_index(records)
    write_table(index, smk.output.msa_index)
    stats = archive_stats(records, index)
    write_json(smk.output.stats, stats)
    plot_ranking(table, smk.output.plot)
    log.info(
        "tabulated %d jobs; MSA archive ratio %sx, seeds %sx",
        len(table),
        stats["msa_ratio"],
        stats["seed_ratio"],
    )


if "snakemake" in globals():
    main(snakemake)
