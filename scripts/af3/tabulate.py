"""Stage 5: one table of every organized job's summary confidences, and the MSA index.

Reads the per-chunk states written by :mod:`af3.organize` (not the 13,700 job directories).
The tables are lists of plain rows written with ``csv`` and ``pyarrow`` (which still imports pandas
when it builds the parquet table, about 0.4 s: most of this job's time). The plot is drawn by
:mod:`af3.plot`, a job of its own that runs beside this one.
"""

import csv
import json
import logging
import os
import statistics
import time
from pathlib import Path

from common import atomic_open, atomic_path, setup_logging, write_json

log = logging.getLogger("hpcpipe")

SCORE_FIELDS = ["ranking_score", "ptm", "iptm", "fraction_disordered", "has_clash"]
TABLE_COLUMNS = [
    "group",
    "job",
    "layout",
    *SCORE_FIELDS,
    "chain_iptm",
    "chain_pair_iptm",
    "n_msa_refs",
    "data_json_bytes",
    "data_json_organized_bytes",
    "seed_members",
    "seed_raw_bytes",
    "seed_archive_bytes",
]
GROUP_COLUMNS = [
    "group",
    "jobs",
    "ranking_score_mean",
    "ranking_score_median",
    "ranking_score_max",
    "iptm_mean",
    "with_clash",
]
MSA_INDEX_COLUMNS = ["group", "job", "chain_ids", "field", "sha256", "raw_bytes", "stored_bytes", "reference"]


def load_records(state_files: list[str]) -> list[dict]:
    records = []
    for path in state_files:
        with open(path) as handle:
            records.extend(json.load(handle)["jobs"])
    return sorted(records, key=lambda r: (r["group"], r["job"]))


def _float(value) -> float | None:
    return None if value is None else float(value)


def confidence_table(records: list[dict]) -> list[dict]:
    """One row per organized job; list-valued AF3 fields are kept as JSON text."""
    rows = []
    for r in records:
        s = r["summary"]
        rows.append(
            {
                "group": r["group"],
                "job": r["job"],
                "layout": r["layout"],
                **{k: _float(s.get(k)) for k in SCORE_FIELDS},
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
    return rows


def group_table(table: list[dict], empty_groups: list[str]) -> list[dict]:
    """Per group: job count and ranking score statistics; empty groups; an ``overall`` row last."""

    def stats(rows: list[dict], name: str) -> dict:
        score = [r["ranking_score"] for r in rows if r["ranking_score"] is not None]
        iptm = [r["iptm"] for r in rows if r["iptm"] is not None]
        return {
            "group": name,
            "jobs": len(rows),
            "ranking_score_mean": round(statistics.fmean(score), 4) if score else None,
            "ranking_score_median": round(statistics.median(score), 4) if score else None,
            "ranking_score_max": max(score) if score else None,
            "iptm_mean": round(statistics.fmean(iptm), 4) if iptm else None,
            "with_clash": sum(1 for r in rows if (r["has_clash"] or 0) > 0),
        }

    by_group: dict[str, list[dict]] = {}
    for row in table:
        by_group.setdefault(row["group"], []).append(row)
    rows = [stats(by_group[name], name) for name in sorted(by_group)]
    rows += [stats([], name) for name in empty_groups]
    rows.append(stats(table, "overall"))
    return rows


def empty_groups(problems_tsv: str | os.PathLike) -> list[str]:
    """Groups that discovery reported without any complete job."""
    with open(problems_tsv, newline="") as handle:
        return [
            row["item"].removeprefix("group ")
            for row in csv.DictReader(handle, delimiter="\t")
            if row["status"] == "empty group"
        ]


def msa_index(records: list[dict]) -> list[dict]:
    """Job + chain + field -> sha256 of the stored text, with sizes."""
    return [
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


def archive_stats(records: list[dict], index: list[dict]) -> dict:
    """Bytes before and after: MSA store (dedup + compression) and seed archives."""
    distinct: dict[str, dict] = {}
    for row in index:
        distinct.setdefault(row["sha256"], row)
    msa_raw = sum(r["raw_bytes"] for r in index)
    msa_stored = sum(r["stored_bytes"] for r in distinct.values())
    distinct_raw = sum(r["raw_bytes"] for r in distinct.values())
    seed_raw = sum(r["seeds"]["raw_bytes"] for r in records)
    seed_arch = sum(r["seeds"]["archive_bytes"] for r in records)
    return {
        "jobs": len(records),
        "msa_values": len(index),
        "msa_distinct": len(distinct),
        "msa_raw_bytes": msa_raw,
        "msa_distinct_raw_bytes": distinct_raw,
        "msa_stored_bytes": msa_stored,
        "msa_ratio": round(msa_raw / msa_stored, 2) if msa_stored else None,
        "msa_dedup_ratio": round(msa_raw / distinct_raw, 2) if distinct_raw else None,
        "msa_kept_inline": sum(r["msa_kept_inline"] for r in records),
        "seed_raw_bytes": seed_raw,
        "seed_archive_bytes": seed_arch,
        "seed_ratio": round(seed_raw / seed_arch, 2) if seed_arch else None,
    }


def write_tsv(rows: list[dict], columns: list[str], path: str | os.PathLike) -> None:
    """Tab-separated, header first, ``None`` as an empty cell, floats as ``repr`` writes them."""
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])


def write_confidence_parquet(rows: list[dict], path: str | os.PathLike) -> None:
    """The confidence table as parquet, with explicit column types (a column of nulls stays typed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"group": pa.string(), "job": pa.string(), "layout": pa.string()}
    types |= {k: pa.float64() for k in SCORE_FIELDS}
    types |= {"chain_iptm": pa.string(), "chain_pair_iptm": pa.string()}
    types |= {c: pa.int64() for c in TABLE_COLUMNS if c not in types}
    schema = pa.schema([(c, types[c]) for c in TABLE_COLUMNS])
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


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


def main(smk) -> None:
    setup_logging(smk.log[0])
    removed = sweep_store_leftovers(Path(smk.params.store))
    if removed:
        log.info("removed %d temporary files left in the MSA store by a killed job", removed)
    records = load_records(list(smk.input.states))
    table = confidence_table(records)
    write_confidence_parquet(table, smk.output.parquet)
    write_tsv(table, TABLE_COLUMNS, smk.output.tsv)
    write_tsv(group_table(table, empty_groups(smk.input.problems)), GROUP_COLUMNS, smk.output.groups)
    index = msa_index(records)
    write_tsv(index, MSA_INDEX_COLUMNS, smk.output.msa_index)
    stats = archive_stats(records, index)
    write_json(smk.output.stats, stats)
    log.info(
        "tabulated %d jobs; MSA archive ratio %sx, seeds %sx",
        len(table),
        stats["msa_ratio"],
        stats["seed_ratio"],
    )


if "snakemake" in globals():
    main(snakemake)
