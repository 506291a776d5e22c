"""Stage 2 (with 3 and 4 for the same job): organize one chunk of AF3 jobs with a worker pool.

For each job of the chunk manifest, one worker:

1. ``rsync -a --delete --partial-dir`` copies the job's top-level files (not the sample dirs, not
   ``_data.json``) into ``<organized>/<group>/<job>/``: an interrupted copy resumes, leftovers of a
   killed copy are deleted, the files this stage writes itself are protected;
2. moves the MSAs of ``<name>_data.json`` into the content-addressed store and writes the
   organized ``_data.json`` with references (:mod:`af3.msa_store`);
3. packs the sample dirs into ``seeds.tar.zst`` and verifies it (:mod:`af3.seeds`);
4. writes a per-job marker with the job's signature from discovery.

A job whose marker matches its signature (and the archive settings) is skipped without touching
the disk beyond one small read: an unchanged job costs almost nothing on a rerun. The source
tree is only read. A failing job does not stop the others; the chunk fails at the end, naming them.
"""

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from common import atomic_open, atomic_path, run_command, setup_logging, write_json

from af3.msa_store import STORE_DIRNAME, strip_text
from af3.seeds import archive_name, pack_seeds

log = logging.getLogger("hpcpipe")

SUMMARY_FIELDS = ["ranking_score", "ptm", "iptm", "fraction_disordered", "has_clash"]


def read_chunk_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows of a per-chunk manifest written by discovery."""
    with open(path) as handle:
        header = handle.readline().rstrip("\n").split("\t")
        return [
            dict(zip(header, line.rstrip("\n").split("\t"), strict=True)) for line in handle if line.strip()
        ]


def rsync_command(src: Path, dest: Path, codec: str) -> list[str]:
    """The rsync call for one job: top-level files only, resumable, our own outputs protected."""
    return [
        "rsync",
        "-a",
        "--delete",
        "--partial-dir=.rsync-partial",
        f"--filter=P /{archive_name(codec)}",
        "--exclude=/seed-*_sample-*/",
        "--exclude=/*_data.json",
        f"{src}/",
        f"{dest}/",
    ]


def settings_key(settings: dict) -> str:
    return json.dumps(
        {k: settings[k] for k in ("msa_codec", "msa_level", "seed_codec", "seed_level")}, sort_keys=True
    )


def organize_job(row: dict, settings: dict) -> dict:
    """Organize one job (see the module docstring); return its record for the chunk state."""
    job, group, prefix = row["job"], row["group"], row["prefix"]
    src = Path(settings["root"]) / job
    organized = Path(settings["organized"])
    dest = organized / group / job
    marker = Path(settings["markers"]) / group / f"{job}.json"
    key = f"{row['signature']} {settings_key(settings)}"
    if marker.exists():
        record = json.loads(marker.read_text())
        if record.get("key") == key and dest.is_dir():
            record["skipped"] = True
            return record
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    run_command(rsync_command(src, dest, settings["seed_codec"]), timeout=settings["timeout"])

    record: dict = {"job": job, "group": group, "prefix": prefix, "layout": row["layout"], "key": key}
    data_json = src / f"{prefix}_data.json"
    if data_json.exists():
        text = data_json.read_bytes().decode("utf-8")
        stripped = strip_text(
            text, organized / STORE_DIRNAME, dest, settings["msa_codec"], settings["msa_level"]
        )
        with atomic_path(dest / data_json.name) as tmp:
            tmp.write_bytes(stripped.text.encode("utf-8"))
        record["data_json_bytes"] = len(text.encode("utf-8"))
        record["data_json_organized_bytes"] = len(stripped.text.encode("utf-8"))
        record["msa"] = [asdict(v) for v in stripped.values]
        record["msa_kept_inline"] = stripped.kept_inline
    else:
        record["data_json_bytes"] = record["data_json_organized_bytes"] = 0
        record["msa"], record["msa_kept_inline"] = [], 0

    with os.scandir(src) as it:
        sample_dirs = sorted(
            e.name for e in it if e.is_dir() and e.name.startswith("seed-") and "_sample-" in e.name
        )
    if sample_dirs:
        record["seeds"] = pack_seeds(src, sample_dirs, dest, settings["seed_codec"], settings["seed_level"])
    else:
        record["seeds"] = {"archive": "", "members": 0, "raw_bytes": 0, "archive_bytes": 0}

    with open(src / f"{prefix}_summary_confidences.json") as handle:
        summary = json.load(handle)
    record["summary"] = {k: summary.get(k) for k in SUMMARY_FIELDS}
    record["summary"]["chain_pair_iptm"] = summary.get("chain_pair_iptm")
    record["summary"]["chain_iptm"] = summary.get("chain_iptm")
    record["source_top_bytes"] = sum(
        e.stat().st_size for e in os.scandir(src) if e.is_file(follow_symlinks=False)
    )
    record["organized_bytes"] = sum(
        e.stat().st_size for e in os.scandir(dest) if e.is_file(follow_symlinks=False)
    )
    with atomic_open(marker) as handle:
        json.dump(record, handle)
    record["skipped"] = False
    record["seconds"] = round(time.monotonic() - started, 3)
    return record


def organize_chunk(
    rows: list[dict], settings: dict, workers: int
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Run :func:`organize_job` over ``rows`` with ``workers`` threads; return (records, failures)."""
    records, failures = [], []

    def one(row):
        try:
            return organize_job(row, settings), None
        except Exception as err:  # one bad job must not stop the others
            return None, (row["job"], f"{type(err).__name__}: {err}")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for record, failure in pool.map(one, rows):
            if failure:
                failures.append(failure)
                log.error("job %s: %s", *failure)
            else:
                records.append(record)
                log.info(
                    "job %s: %s", record["job"], "unchanged, skipped" if record["skipped"] else "organized"
                )
    return records, failures


def main(smk) -> None:
    setup_logging(smk.log[0])
    rows = read_chunk_manifest(smk.input.chunk)
    settings = dict(smk.params.settings)
    records, failures = organize_chunk(rows, settings, smk.threads)
    skipped = sum(r["skipped"] for r in records)
    log.info(
        "chunk %s: %d jobs, %d organized, %d unchanged, %d failed (%d workers)",
        smk.wildcards.chunk,
        len(rows),
        len(records) - skipped,
        skipped,
        len(failures),
        smk.threads,
    )
    if failures:
        raise SystemExit(
            f"af3 chunk {smk.wildcards.chunk}: {len(failures)} job(s) failed: "
            + "; ".join(f"{job}: {why}" for job, why in failures)
        )
    for r in records:
        r.pop("seconds", None)
        r.pop("skipped", None)
    write_json(
        smk.output.state, {"chunk": smk.wildcards.chunk, "jobs": sorted(records, key=lambda r: r["job"])}
    )


if "snakemake" in globals():
    main(snakemake)
