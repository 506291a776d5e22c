"""Download one run's FASTQ from the first source that works, verified, into one folder.

Sources, in the order of ``rnaseq.sources``:

- ``ena``: the FASTQ files of the ``fastq_ftp`` column (site mirror first when configured), each
  resumed, checked against ``fastq_bytes``/``fastq_md5`` and gzip-tested;
- ``sra``: the SRA object of ``sra_url``, resumed and checked the same way, then ``vdb-validate``
  and ``fasterq-dump --split-3`` into gzip FASTQ;
- ``prefetch``: the same via sra-tools' ``prefetch <run>``.

Work happens in ``partial/<run>/``, which outlives a killed or failed job: files that passed their
checks are not fetched again, and a half-fetched file is resumed. Only a complete, verified set
is moved (one rename) into the output folder, with ``reads.json`` describing it.
"""

import contextlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import write_json

from rnaseq.fetch import FetchError, fetch_file
from rnaseq.samples import RemoteFile, Run
from rnaseq.sra import prefetch, sra_to_fastq, validate_sra

log = logging.getLogger("hpcpipe")


class DownloadError(RuntimeError):
    """Every source failed for a run; the message names the run and each source's failure."""


@dataclass
class DownloadSettings:
    sources: list[str]
    attempt_timeout: float = 1800.0
    stall_timeout: float = 120.0
    prefetch_max_size: str = "100G"
    threads: int = 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _fetch_remote(remote: RemoteFile, workdir: Path, settings: DownloadSettings) -> dict:
    """Fetch one file from its first working location (mirror, then the archive)."""
    failures = []
    for location in remote.locations:
        try:
            result = fetch_file(
                location.url,
                workdir / remote.name,
                md5=remote.md5,
                size=remote.size,
                attempt_timeout=settings.attempt_timeout,
                stall_timeout=settings.stall_timeout,
            )
        except FetchError as err:
            log.warning("%s from %s: %s", remote.name, location.url, err)
            failures.append(f"{location.url}: {err}")
            continue
        if result.resumed_from:
            log.info("%s: resumed at byte %d", remote.name, result.resumed_from)
        return {
            "url": result.url,
            "bytes": result.bytes,
            "seconds": result.seconds,
            "records": result.records,
        }
    raise FetchError(f"{remote.name}: " + "; ".join(failures))


def _from_ena(run: Run, workdir: Path, settings: DownloadSettings, stages: dict) -> dict[str, int]:
    """The FASTQ files themselves; size, MD5, gzip and records are checked as they arrive."""
    if not run.fastq:
        raise FetchError("no fastq_ftp in the sample sheet")
    start = time.monotonic()
    transfers = [_fetch_remote(remote, workdir, settings) for remote in run.fastq]
    stages["transfer_s"] = round(time.monotonic() - start, 3)
    stages["verify_s"] = 0.0  # done during the transfer
    stages["urls"] = [t["url"] for t in transfers]
    return {remote.name: t["records"] for remote, t in zip(run.fastq, transfers, strict=True)}


def _convert(run: Run, sra: Path, workdir: Path, settings: DownloadSettings, stages: dict) -> dict[str, int]:
    start = time.monotonic()
    try:
        validate_sra(sra, settings.attempt_timeout)
    except FetchError:
        # a damaged archive would be reused by every retry: remove it so the next one fetches it
        if sra.parent.name == run.run:  # prefetch's <run>/ folder: its own partial files go too
            shutil.rmtree(sra.parent, ignore_errors=True)
        else:
            sra.unlink(missing_ok=True)
        raise
    stages["verify_s"] = round(time.monotonic() - start, 3)
    start = time.monotonic()
    counts = sra_to_fastq(sra, run.run, run.paired, workdir, settings.threads, settings.attempt_timeout)
    stages["convert_s"] = round(time.monotonic() - start, 3)
    return counts


def _from_sra(run: Run, workdir: Path, settings: DownloadSettings, stages: dict) -> dict[str, int]:
    if run.sra is None:
        raise FetchError("no sra_url in the sample sheet")
    start = time.monotonic()
    transfer = _fetch_remote(run.sra, workdir, settings)
    stages["transfer_s"] = round(time.monotonic() - start, 3)
    stages["urls"] = [transfer["url"]]
    return _convert(run, workdir / run.sra.name, workdir, settings, stages)


def _from_prefetch(run: Run, workdir: Path, settings: DownloadSettings, stages: dict) -> dict[str, int]:
    start = time.monotonic()
    sra = prefetch(run.run, workdir, settings.prefetch_max_size, settings.attempt_timeout)
    stages["transfer_s"] = round(time.monotonic() - start, 3)
    stages["urls"] = [f"prefetch {run.run}"]
    return _convert(run, sra, workdir, settings, stages)


SOURCES = {"ena": _from_ena, "sra": _from_sra, "prefetch": _from_prefetch}


def check_reads(run: Run, counts: dict[str, int]) -> int:
    """Spots in the run (pairs for paired runs); FetchError on zero reads, unequal mates, or a
    count other than the archive's ``read_count``."""
    values = [counts[name] for name in run.fastq_names]
    if any(v == 0 for v in values):
        raise FetchError("the FASTQ holds zero reads")
    if len(set(values)) > 1:
        raise FetchError(f"mates differ in length: {', '.join(f'{k}={v}' for k, v in counts.items())}")
    if run.read_count is not None and values[0] != run.read_count:
        raise FetchError(f"FASTQ holds {values[0]} spots, the archive's read_count is {run.read_count}")
    return values[0]


def clean_failed_source(kind: str, run: Run, workdir: Path, checked: bool) -> None:
    """After source ``kind`` failed, keep in its own folder only what a resume can use.

    Kept: files that passed their checks (``<name>.fastq.gz`` from ENA, a ``.sra`` that
    vdb-validate accepted, prefetch's own resumable files) and the ``.part`` of a transfer that was
    cut off (the next attempt asks for the rest). Removed: fasterq-dump's working folder and the
    FASTQs converted from an archive (made again from the kept archive in seconds, and as large as
    the run), and FASTQs whose reads failed the checks (``checked``): kept, they would fail the same
    way on every retry. Another source's folder is never touched.
    """
    shutil.rmtree(workdir / "fasterq", ignore_errors=True)
    if kind != "ena" or checked:
        for name in run.fastq_names:
            (workdir / name).unlink(missing_ok=True)


def download_run(run: Run, outdir: Path, partial: Path, settings: DownloadSettings) -> dict:
    """Produce ``outdir/<run>[_1|_2].fastq.gz`` + ``outdir/reads.json``; return the metrics.

    ``partial`` is this run's work folder (kept across attempts, removed on success); each source
    works in its own subfolder ``partial/<source>/`` and cleans up only there, so one source's
    failure never deletes another's verified files. Raises :class:`DownloadError` naming the run
    and every source's failure, last source last.
    """
    started = _now()
    t0 = time.monotonic()
    attempts = []
    for kind in settings.sources:
        stages: dict = {}
        workdir = partial / kind
        workdir.mkdir(parents=True, exist_ok=True)
        counts = None
        try:
            counts = SOURCES[kind](run, workdir, settings, stages)
            spots = check_reads(run, counts)
        except (FetchError, OSError) as err:
            # OSError: a file vanished or a disk filled; the next source may still work
            log.warning("%s: source %s failed: %s", run.run, kind, err)
            attempts.append({"source": kind, "error": str(err)})
            clean_failed_source(kind, run, workdir, checked=counts is not None)
            continue
        attempts.append({"source": kind, "error": None})
        files = []
        for name in run.fastq_names:
            files.append({"name": name, "bytes": (workdir / name).stat().st_size, "reads": counts[name]})
        metrics = {
            "run": run.run,
            "sample": run.sample,
            "layout": run.layout,
            "species": run.species,
            "status": "ok",
            "error": "",
            "source": kind,
            "urls": stages.get("urls", []),
            "files": files,
            "spots": spots,
            "fastq_bytes": sum(f["bytes"] for f in files),
            "download_start": started,
            "download_end": _now(),
            "download_s": round(time.monotonic() - t0, 3),
            "transfer_s": stages.get("transfer_s"),
            "verify_s": stages.get("verify_s"),
            "convert_s": stages.get("convert_s"),
            "attempts": attempts,
        }
        staging = partial / "complete"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in run.fastq_names:
            (workdir / name).rename(staging / name)
        write_json(staging / "reads.json", metrics)
        outdir.parent.mkdir(parents=True, exist_ok=True)
        if outdir.exists():
            shutil.rmtree(outdir)
        staging.rename(outdir)
        shutil.rmtree(partial, ignore_errors=True)
        with contextlib.suppress(OSError):
            partial.parent.rmdir()  # only when no other run is in progress
        log.info("%s: %d spots from %s in %.1f s", run.run, spots, kind, metrics["download_s"])
        return metrics
    for kind in settings.sources:  # an empty source folder says nothing: drop it
        with contextlib.suppress(OSError):
            (partial / kind).rmdir()
    with contextlib.suppress(OSError):
        partial.rmdir()
    detail = "\n  ".join(f"{a['source']}: {a['error']}" for a in attempts)
    raise DownloadError(
        f"run {run.run}: every source failed ({', '.join(settings.sources)}); "
        f"last: {attempts[-1]['source'] if attempts else 'none'}\n  {detail}"
    )


def failure_record(run: Run, error: str, stage: str) -> dict:
    """The metrics of a run that failed at ``stage`` (download or quant), for the QC table."""
    first_line = error.strip().splitlines()[0] if error.strip() else stage + " failed"
    return {
        "run": run.run,
        "sample": run.sample,
        "layout": run.layout,
        "species": run.species,
        "status": "failed",
        "failed_stage": stage,
        "error": first_line,
        "error_detail": error,
    }


def settings_from_config(cfg: dict, threads: int = 1) -> DownloadSettings:
    """Download settings from the validated ``rnaseq`` config section."""
    return DownloadSettings(
        sources=list(cfg["sources"]),
        attempt_timeout=float(cfg["download"]["attempt_timeout_s"]),
        stall_timeout=float(cfg["download"]["stall_timeout_s"]),
        prefetch_max_size=str(cfg["download"]["prefetch_max_size"]),
        threads=max(1, threads),
    )


def attempt_history(path: str | os.PathLike) -> int:
    """Append this attempt's log lines to ``path`` (kept across attempts and runs, unlike the rule's
    log, which Snakemake empties before each attempt), each line with the attempt number; return it."""
    path = Path(path)
    previous = [int(m) for m in re.findall(r"^\S+ \S+ attempt (\d+) ", _read(path), flags=re.M)]
    number = max(previous, default=0) + 1
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter(f"%(asctime)s attempt {number} %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    return number


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


if "snakemake" in globals():
    from common import setup_logging

    from rnaseq import disk_slots
    from rnaseq.samples import sheet_from_config

    setup_logging(snakemake.log.main)
    attempt = attempt_history(snakemake.params.history)
    cfg = snakemake.config["rnaseq"]
    run = sheet_from_config(cfg)[snakemake.wildcards.run]
    outdir = Path(snakemake.output.fastq)
    slots = Path(snakemake.params.disk_slots)
    final = int(snakemake.resources.download_attempt) > int(cfg["download"]["retries"])
    fd, slot_start = disk_slots.acquire(
        run.run, slots, outdir.parent, int(cfg["download"]["max_runs_on_disk"])
    )
    try:
        result = download_run(
            run, outdir, Path(snakemake.params.partial), settings_from_config(cfg, snakemake.threads)
        )
        write_json(snakemake.output.metrics, {**result, "disk_slot_start": slot_start})
    except DownloadError as err:
        log.error("%s", err)
        disk_slots.release(run.run, slots)
        if not final:
            raise SystemExit(1) from None  # Snakemake retries the job
        # The last attempt records the failure and succeeds: the other runs' matrices go on, and
        # rnaseq_check fails the workflow naming this run (and clears the record for the next run).
        outdir.mkdir(parents=True, exist_ok=True)
        write_json(snakemake.output.metrics, failure_record(run, str(err), "download"))
        log.info("%s: failure recorded (attempt %d was the last)", run.run, attempt)
    finally:
        os.close(fd)
