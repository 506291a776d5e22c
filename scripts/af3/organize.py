"""Stage 2 (with 3 and 4 for the same job): organize one chunk of AF3 jobs with a worker pool.

For each job of the chunk manifest, one worker works in ``<organized>/_partial/<group>/<job>/``
(an earlier organized copy of the job is moved there first, so rsync and the archives reuse it)
and renames it to ``<organized>/<group>/<job>/`` only when every step below succeeded: a failed or
killed job never leaves anything that looks organized, is tabulated or is uploaded.

1. ``rsync -a --delete --partial-dir`` copies the job's top-level files (not the sample dirs, not
   ``_data.json``): an interrupted copy resumes, leftovers of a
   killed copy are deleted, the files this stage writes itself are protected. One rsync serves all
   the chunk's pending jobs of a group (starting rsync costs ~50 ms, more than copying a job's
   top-level files); when it fails, each of its jobs is copied alone, so the failure names the job;
2. moves the MSAs of ``<name>_data.json`` into the content-addressed store and writes the
   organized ``_data.json`` with references (:mod:`af3.msa_store`);
3. packs the sample dirs into ``seeds.tar.zst`` and verifies it (:mod:`af3.seeds`);
4. writes a per-job marker with the job's signature from discovery.

A job whose marker matches its signature (and the archive settings) is skipped without touching
the disk beyond one small read: an unchanged job costs almost nothing on a rerun. The source
tree is only read. A failing job does not stop the others: it is recorded in the chunk state as
failed (job, file, reason), the chunk succeeds, and ``af3_check`` fails the run naming it.
"""

import csv
import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from batches import Progress, current_marker, read_manifest, run_items, write_marker
from common import CommandError, atomic_path, run_command, setup_logging, write_json

from af3.msa_store import STORE_DIRNAME, strip_text
from af3.seeds import archive_name, pack_seeds

log = logging.getLogger("hpcpipe")

SUMMARY_FIELDS = ["ranking_score", "ptm", "iptm", "fraction_disordered", "has_clash"]
SUMMARY_LISTS = ["chain_iptm", "chain_pair_iptm", "chain_ptm", "chain_pair_pae_min"]
PARTIAL_DIRNAME = "_partial"


class JobFailed(Exception):
    """One job could not be organized: ``file`` is the path at fault, ``reason`` says why."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


def partial_dir(organized: Path, group: str, job: str) -> Path:
    """Where a job is organized before it is renamed into ``<organized>/<group>/<job>``."""
    return organized / PARTIAL_DIRNAME / group / job


def read_ranking_samples(path: Path) -> list[dict]:
    """Rows (seed, sample, ranking_score) of AF3's ranking CSV (csv.writer's CRLF line ends)."""
    with open(path, newline="") as handle:
        return [
            {
                "seed": int(row["seed"]),
                "sample": int(row["sample"]),
                "ranking_score": float(row["ranking_score"]),
            }
            for row in csv.DictReader(handle)
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


def rsync_group_command(root: Path, jobs: list[str], group_dir: Path, codec: str) -> list[str]:
    """One rsync call for several jobs of one group: ``root/<job>/`` -> ``group_dir/<job>/``.

    The same rules as :func:`rsync_command`, one level down; every other entry of ``root`` (and of
    ``group_dir``) is excluded, so neither other jobs nor their organized copies are touched.
    Job names come from discovery (letters, digits, ``_.+-``): no filter wildcards.
    """
    return [
        "rsync",
        "-a",
        "--delete",
        "--partial-dir=.rsync-partial",
        f"--filter=P /*/{archive_name(codec)}",
        "--exclude=/*/seed-*_sample-*/",
        "--exclude=/*/*_data.json",
        *(f"--include=/{job}/" for job in jobs),
        "--exclude=/*",
        f"{root}/",
        f"{group_dir}/",
    ]


# Raised when a record gains fields: older markers then count as stale and their jobs are redone.
RECORD_FORMAT = 3


def settings_key(settings: dict) -> str:
    keys = {k: settings[k] for k in ("msa_codec", "msa_level", "seed_codec", "seed_level")}
    return json.dumps({**keys, "format": RECORD_FORMAT}, sort_keys=True)


def job_signature(row: dict, settings: dict) -> str:
    """What a job's marker must carry to count: discovery's signature of the job and the settings."""
    return f"{row['signature']} {settings_key(settings)}"


def unchanged_record(row: dict, settings: dict) -> dict | None:
    """The job's marker record when the job is organized already with the same signature and settings."""
    marker = Path(settings["markers"]) / row["group"] / f"{row['job']}.json"
    dest = Path(settings["organized"]) / row["group"] / row["job"]
    record = current_marker(marker, job_signature(row, settings))
    if record is not None and dest.is_dir():
        record["skipped"] = True
        return record
    return None


def start_partial(organized: Path, group: str, job: str) -> Path:
    """The job's work dir under ``_partial``: an earlier organized copy is moved there to be reused."""
    work, dest = partial_dir(organized, group, job), organized / group / job
    work.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():
        if work.exists():
            shutil.rmtree(work)
        os.rename(dest, work)
    return work


def copy_group(rows: list[dict], settings: dict) -> list[str]:
    """rsync the top-level files of ``rows`` (jobs of one group) in one call; return the jobs copied.

    The copies land in the jobs' work dirs under ``_partial`` (see :func:`start_partial`). When the
    shared call fails, each job is copied on its own; a job that fails alone is left out of the
    result (:func:`organize_job` then copies it again and reports its error).
    """
    root, codec = Path(settings["root"]), settings["seed_codec"]
    organized = Path(settings["organized"])
    group_dir = organized / PARTIAL_DIRNAME / rows[0]["group"]
    group_dir.mkdir(parents=True, exist_ok=True)
    # A job dir that vanished since discovery is left to organize_job, which reports it: in the
    # shared call, --delete would empty its organized copy instead.
    jobs = [r["job"] for r in rows if (root / r["job"]).is_dir()]
    if not jobs:
        return []
    for job in list(jobs):
        try:
            start_partial(organized, rows[0]["group"], job)
        except OSError as err:  # organize_job tries again and reports it for this job alone
            log.warning("job %s: could not prepare its work dir: %s", job, err)
            jobs.remove(job)
    if not jobs:
        return []
    try:
        run_command(rsync_group_command(root, jobs, group_dir, codec), timeout=settings["timeout"])
        return jobs
    except CommandError as err:
        log.warning("group %s: shared rsync failed, copying its jobs one by one: %s", rows[0]["group"], err)
    copied = []
    for job in jobs:
        try:
            run_command(rsync_command(root / job, group_dir / job, codec), timeout=settings["timeout"])
            copied.append(job)
        except CommandError:
            pass
    return copied


def organize_job(row: dict, settings: dict, copied: bool = False) -> dict:
    """Organize one job (see the module docstring); return its record for the chunk state.

    ``copied``: its top-level files were just rsynced by :func:`copy_group`. Raises
    :class:`JobFailed` naming the file at fault.
    """
    if not copied and (unchanged := unchanged_record(row, settings)) is not None:
        return unchanged
    job, group, prefix = row["job"], row["group"], row["prefix"]
    src = Path(settings["root"]) / job
    organized = Path(settings["organized"])
    dest = organized / group / job
    marker = Path(settings["markers"]) / group / f"{job}.json"
    signature = job_signature(row, settings)
    started = time.monotonic()
    at = str(src)  # the file being worked on, for the failure report
    try:
        if not src.is_dir():
            raise FileNotFoundError("the job directory is gone from the source since discovery")
        work = partial_dir(organized, group, job) if copied else start_partial(organized, group, job)
        work.mkdir(parents=True, exist_ok=True)
        if not copied:
            run_command(rsync_command(src, work, settings["seed_codec"]), timeout=settings["timeout"])

        record: dict = {"job": job, "group": group, "prefix": prefix, "layout": row["layout"]}
        record["signature"] = signature
        data_json = src / f"{prefix}_data.json"
        at = str(data_json)
        if data_json.exists():
            text = data_json.read_bytes().decode("utf-8")
            # References are relative to where the file will live once renamed into place.
            stripped = strip_text(
                text, organized / STORE_DIRNAME, dest, settings["msa_codec"], settings["msa_level"]
            )
            with atomic_path(work / data_json.name) as tmp:
                tmp.write_bytes(stripped.text.encode("utf-8"))
            record["data_json_bytes"] = len(text.encode("utf-8"))
            record["data_json_organized_bytes"] = len(stripped.text.encode("utf-8"))
            record["msa"] = [asdict(v) for v in stripped.values]
            record["msa_kept_inline"] = stripped.kept_inline
        else:
            record["data_json_bytes"] = record["data_json_organized_bytes"] = 0
            record["msa"], record["msa_kept_inline"] = [], 0

        at = str(src)
        with os.scandir(src) as it:
            sample_dirs = sorted(
                e.name for e in it if e.is_dir() and e.name.startswith("seed-") and "_sample-" in e.name
            )
        for d in sample_dirs:
            at = str(src / d)
            if links := sample_dir_links(src / d):
                raise ValueError(
                    f"symlink inside a sample dir ({links[0]}): AF3 writes none; not archived, replace it by the file"
                )
        if sample_dirs:
            at = str(src / sample_dirs[0]) if len(sample_dirs) == 1 else f"{src}/seed-*_sample-*"
            record["seeds"] = pack_seeds(
                src, sample_dirs, work, settings["seed_codec"], settings["seed_level"]
            )
        else:
            record["seeds"] = {"archive": "", "members": 0, "raw_bytes": 0, "archive_bytes": 0}

        summary_json = src / f"{prefix}_summary_confidences.json"
        at = str(summary_json)
        summary = json.loads(summary_json.read_bytes().decode("utf-8"))
        if not isinstance(summary, dict):
            raise ValueError("not a JSON object")
        record["summary"] = {k: summary.get(k) for k in [*SUMMARY_FIELDS, *SUMMARY_LISTS]}
        record["summary_missing"] = [k for k in SUMMARY_FIELDS if k not in summary]
        ranking = next(
            p for p in (src / f"{prefix}_ranking_scores.csv", src / "ranking_scores.csv") if p.exists()
        )
        at = str(ranking)
        record["samples"] = read_ranking_samples(ranking)

        at = str(src)
        record["source_top_bytes"] = sum(
            e.stat().st_size for e in os.scandir(src) if e.is_file(follow_symlinks=False)
        )
        record["organized_bytes"] = sum(
            e.stat().st_size for e in os.scandir(work) if e.is_file(follow_symlinks=False)
        )
        at = str(dest)
        if dest.exists():  # left by an older version that organized in place
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(work, dest)
        write_marker(marker, record)
    except Exception as err:
        raise JobFailed(at, f"{type(err).__name__}: {err}") from err
    record["skipped"] = False
    record["seconds"] = round(time.monotonic() - started, 3)
    return record


def sample_dir_links(sample_dir: Path) -> list[str]:
    """Symlinks inside one sample dir (relative paths): the seed archive refuses them."""
    links = []
    for root, dirs, files in os.walk(sample_dir):
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                links.append(os.path.relpath(os.path.join(root, name), sample_dir.parent))
    return links


def _organize_one(args: tuple[dict, dict, bool]) -> tuple[dict | None, dict | None]:
    """One job for the worker pool: (record, None), or (None, failure) naming the file at fault.

    Other exceptions (and a worker's death) are left to :func:`batches.run_items`, which fails
    this job alone.
    """
    row, settings, copied = args
    try:
        return organize_job(row, settings, copied=copied), None
    except JobFailed as err:  # one bad job must not stop the others
        return None, {"job": row["job"], "group": row["group"], "file": err.file, "reason": err.reason}


def organize_chunk(
    rows: list[dict], settings: dict, workers: int, chunk: str = ""
) -> tuple[list[dict], list[dict]]:
    """Organize ``rows`` with ``workers`` processes; return (records, failures).

    A failure is a dict: job, group, file (the path at fault) and reason.

    Jobs not organized already are first copied with one rsync per group (:func:`copy_group`,
    ``workers`` rsyncs at a time). The rest of a job's work (JSON, hashing, tar headers) is Python
    that holds the GIL, so it runs in worker processes: threads got about 1.5 of 2 cores.
    """
    records, failures = [], []
    unchanged: dict[str, dict] = {}
    pending: dict[str, list[dict]] = {}
    for row in rows:
        record = unchanged_record(row, settings)
        if record is None:
            pending.setdefault(row["group"], []).append(row)
        else:
            unchanged[row["job"]] = record

    copied: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for jobs in pool.map(lambda group_rows: copy_group(group_rows, settings), pending.values()):
            copied.update(jobs)
    tasks = [(row, settings, row["job"] in copied) for row in rows if row["job"] not in unchanged]
    # The shared pool (fork: the workers inherit the imported modules and the log file; the rsync
    # threads above are done): a crash or kill of one worker fails its job alone.
    done, died = run_items(
        tasks,
        _organize_one,
        workers,
        name=lambda task: task[0]["job"],
        progress=Progress(len(tasks), f"chunk {chunk}: jobs organized" if chunk else "jobs organized"),
    )
    results = {}
    for record, failure in done:
        results[(record or failure)["job"]] = (record, failure)
    for job, reason in died:
        row = next(t[0] for t in tasks if t[0]["job"] == job)
        where = str(Path(settings["root"]) / job)
        results[job] = (None, {"job": job, "group": row["group"], "file": where, "reason": reason})
    for row in rows:
        record, failure = (unchanged[row["job"]], None) if row["job"] in unchanged else results[row["job"]]
        if failure:
            failures.append(failure)
            log.error("job %s failed: %s: %s", failure["job"], failure["file"], failure["reason"])
        else:
            records.append(record)
            log.info("job %s: %s", record["job"], "unchanged, skipped" if record["skipped"] else "organized")
    return records, failures


def main(smk) -> None:
    setup_logging(smk.log[0])
    rows = read_manifest(smk.input.chunk)
    settings = dict(smk.params.settings)
    records, failures = organize_chunk(rows, settings, smk.threads, smk.wildcards.chunk)
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
    for r in records:
        r.pop("seconds", None)
        r.pop("skipped", None)
    # The chunk succeeds with its failed jobs listed: tables, summary and upload cover the others,
    # and af3_check fails the run naming them (and makes the next run retry exactly those).
    write_json(
        smk.output.state,
        {
            "chunk": smk.wildcards.chunk,
            "jobs": sorted(records, key=lambda r: r["job"]),
            "failed": sorted(failures, key=lambda f: f["job"]),
        },
    )


if "snakemake" in globals():
    main(snakemake)
