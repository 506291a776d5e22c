"""Stage 5: one table of every organized job's summary confidences, and the MSA index.

Reads the per-chunk states written by :mod:`af3.organize` (not the 13,700 job directories).
``failed.tsv`` lists what the tables leave out or leave empty, one line each: jobs that failed in
organize (job, file, reason), organized copies of jobs no longer current ("gone": the job left the
source or moved to another group), and values that are missing or not finite (NaN, Infinity), which
become empty cells and are never averaged.
The tables are lists of plain rows written with ``csv`` and ``pyarrow`` (which still imports pandas
when it builds the parquet table, about 0.4 s: most of this job's time). The plot is drawn by
:mod:`af3.plot`, a job of its own that runs beside this one.
"""

import csv
import json
import logging
import math
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
    "chain_ptm",
    "chain_pair_pae_min",
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
LIST_FIELDS = ["chain_iptm", "chain_pair_iptm", "chain_ptm", "chain_pair_pae_min"]
SAMPLE_COLUMNS = ["group", "job", "seed", "sample", "ranking_score", "best"]
FAILED_COLUMNS = ["item", "status", "chunk", "file", "reason"]
ORGANIZED_COLUMNS = ["group", "job", "signature"]
# Not groups: the MSA store, the index, work dirs of jobs in progress, reports sent with the upload.
RESERVED_DIRS = {"_msa_store", "_index", "_partial", "_reports"}
MSA_INDEX_COLUMNS = ["group", "job", "chain_ids", "field", "sha256", "raw_bytes", "stored_bytes", "reference"]


def load_states(state_files: list[str]) -> tuple[list[dict], list[dict]]:
    """(records of the organized jobs, failures) of every chunk state, sorted by group and job."""
    records, failures = [], []
    for path in state_files:
        with open(path) as handle:
            state = json.load(handle)
        records.extend(state["jobs"])
        failures.extend({**f, "chunk": state["chunk"]} for f in state.get("failed", []))
    return sorted(records, key=lambda r: (r["group"], r["job"])), sorted(failures, key=lambda f: f["job"])


def load_records(state_files: list[str]) -> list[dict]:
    """The records of the organized jobs of every chunk state."""
    return load_states(state_files)[0]


def finite(value) -> float | None:
    """``value`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def bad_values(records: list[dict]) -> list[dict]:
    """A ``failed.tsv`` line per score that is missing or not finite (left empty in the tables)."""
    rows = []
    for r in records:
        file = f"{r['job']}/{r['prefix']}_summary_confidences.json"
        for k in SCORE_FIELDS:
            value = r["summary"].get(k)
            if finite(value) is None:
                why = "missing" if k in r.get("summary_missing", []) else f"not a finite number ({value!r})"
                rows.append(
                    {
                        "item": r["job"],
                        "status": "bad value",
                        "chunk": "",
                        "file": file,
                        "reason": f"{k}: {why}",
                    }
                )
        for k in LIST_FIELDS:
            if _has_non_finite(r["summary"].get(k)):
                rows.append(
                    {
                        "item": r["job"],
                        "status": "bad value",
                        "chunk": "",
                        "file": file,
                        "reason": f"{k}: holds a value that is not a finite number (written as null)",
                    }
                )
    return rows


def _has_non_finite(value) -> bool:
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value)


def _json_list(value) -> str:
    """A list-valued AF3 field as JSON text; NaN and Infinity become null (valid JSON)."""
    if value is None:
        return ""

    def clean(v):
        if isinstance(v, list):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return json.dumps(clean(value))


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
                **{k: finite(s.get(k)) for k in SCORE_FIELDS},
                **{k: _json_list(s.get(k)) for k in LIST_FIELDS},
                "n_msa_refs": len(r["msa"]),
                "data_json_bytes": r["data_json_bytes"],
                "data_json_organized_bytes": r["data_json_organized_bytes"],
                "seed_members": r["seeds"]["members"],
                "seed_raw_bytes": r["seeds"]["raw_bytes"],
                "seed_archive_bytes": r["seeds"]["archive_bytes"],
            }
        )
    return rows


def sample_table(records: list[dict]) -> list[dict]:
    """One row per seed and sample of each job (from AF3's ranking CSV); ``best`` marks the top one."""
    rows = []
    for r in records:
        samples = r.get("samples", [])
        scores = [finite(s["ranking_score"]) for s in samples]
        top = max((v for v in scores if v is not None), default=None)
        for s, score in zip(samples, scores, strict=True):
            rows.append(
                {
                    "group": r["group"],
                    "job": r["job"],
                    "seed": s["seed"],
                    "sample": s["sample"],
                    "ranking_score": score,
                    "best": int(score is not None and score == top),
                }
            )
    return rows


def gone_jobs(organized: Path, records: list[dict], failures: list[dict]) -> list[dict]:
    """Organized job dirs that are no current job: reported, kept (they may be the only copy)."""
    current = {(r["group"], r["job"]) for r in records} | {(f["group"], f["job"]) for f in failures}
    rows = []
    if not organized.is_dir():
        return rows
    for group in sorted(os.scandir(organized), key=lambda e: e.name):
        if group.name in RESERVED_DIRS or not group.is_dir(follow_symlinks=False):
            continue
        for job in sorted(os.scandir(group.path), key=lambda e: e.name):
            if job.is_dir(follow_symlinks=False) and (group.name, job.name) not in current:
                rows.append(
                    {
                        "item": job.name,
                        "status": "gone",
                        "chunk": "",
                        "file": f"{organized}/{group.name}/{job.name}",
                        "reason": "organized earlier, no longer a current job (gone from the source, now a "
                        "duplicate, or in another group): kept, not in the tables",
                    }
                )
    return rows


def group_table(table: list[dict], empty_groups: list[str]) -> list[dict]:
    """Per group: job count and ranking score statistics; empty groups; an ``overall`` row last."""

    def stats(rows: list[dict], name: str) -> dict:
        # None: missing or not finite (see failed.tsv); never part of a mean.
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
    types |= {k: pa.string() for k in LIST_FIELDS}
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


def remove_empty_partial_dirs(organized: Path) -> None:
    """Group dirs under ``_partial`` that finished jobs left empty, then ``_partial`` itself if
    empty (no chunk job runs now): what stays there is a failed job's work."""
    partial = organized / "_partial"
    if partial.is_dir():
        for group in os.scandir(partial):
            if group.is_dir(follow_symlinks=False) and not any(os.scandir(group.path)):
                os.rmdir(group.path)
        if not any(os.scandir(partial)):
            os.rmdir(partial)


def main(smk) -> None:
    setup_logging(smk.log[0])
    remove_empty_partial_dirs(Path(smk.params.organized))
    removed = sweep_store_leftovers(Path(smk.params.store))
    if removed:
        log.info("removed %d temporary files left in the MSA store by a killed job", removed)
    records, failures = load_states(list(smk.input.states))
    table = confidence_table(records)
    write_confidence_parquet(table, smk.output.parquet)
    write_tsv(table, TABLE_COLUMNS, smk.output.tsv)
    write_tsv(sample_table(records), SAMPLE_COLUMNS, smk.output.samples)
    write_tsv(group_table(table, empty_groups(smk.input.problems)), GROUP_COLUMNS, smk.output.groups)
    index = msa_index(records)
    write_tsv(index, MSA_INDEX_COLUMNS, smk.output.msa_index)
    stats = archive_stats(records, index)
    stats["failed_jobs"] = len(failures)
    write_json(smk.output.stats, stats)
    failed = [{"item": f["job"], "status": "failed", **f} for f in failures]
    failed += gone_jobs(Path(smk.params.organized), records, failures) + bad_values(records)
    write_tsv(failed, FAILED_COLUMNS, smk.output.failed)
    write_tsv(
        [{"group": r["group"], "job": r["job"], "signature": r["signature"]} for r in records],
        ORGANIZED_COLUMNS,
        smk.output.organized,
    )
    log.info(
        "tabulated %d jobs (%d failed in organize); MSA archive ratio %sx, seeds %sx",
        len(table),
        len(failures),
        stats["msa_ratio"],
        stats["seed_ratio"],
    )
    for f in failed:
        log.warning("%s %s: %s: %s", f["status"], f["item"], f["file"], f["reason"])


if "snakemake" in globals():
    main(snakemake)
