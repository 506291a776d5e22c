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
    validate_sra(sra, settings.attempt_timeout)
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
    sra = prefetch(run.run, workdir / "prefetch", settings.prefetch_max_size, settings.attempt_timeout)
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


def download_run(run: Run, outdir: Path, partial: Path, settings: DownloadSettings) -> dict:
    """Produce ``outdir/<run>[_1|_2].fastq.gz`` + ``outdir/reads.json``; return the metrics.

    ``partial`` is this run's work folder (kept across attempts, removed on success). Raises
    :class:`DownloadError` naming the run and every source's failure, last source last.
    """
    started = _now()
    t0 = time.monotonic()
    partial.mkdir(parents=True, exist_ok=True)
    attempts = []
    for kind in settings.sources:
        stages: dict = {}
        try:
            counts = SOURCES[kind](run, partial, settings, stages)
            spots = check_reads(run, counts)
        except FetchError as err:
            log.warning("%s: source %s failed: %s", run.run, kind, err)
            attempts.append({"source": kind, "error": str(err)})
            # A converted FASTQ that failed its checks must not be taken for a verified download.
            for name in run.fastq_names:
                if kind != "ena":
                    (partial / name).unlink(missing_ok=True)
            continue
        attempts.append({"source": kind, "error": None})
        files = []
        for name in run.fastq_names:
            files.append({"name": name, "bytes": (partial / name).stat().st_size, "reads": counts[name]})
        metrics = {
            "run": run.run,
            "sample": run.sample,
            "layout": run.layout,
            "species": run.species,
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
            (partial / name).rename(staging / name)
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
    detail = "\n  ".join(f"{a['source']}: {a['error']}" for a in attempts)
    raise DownloadError(
        f"run {run.run}: every source failed ({', '.join(settings.sources)}); "
        f"last: {attempts[-1]['source'] if attempts else 'none'}\n  {detail}"
    )


def settings_from_config(cfg: dict, threads: int = 1) -> DownloadSettings:
    """Download settings from the validated ``rnaseq`` config section."""
    return DownloadSettings(
        sources=list(cfg["sources"]),
        attempt_timeout=float(cfg["download"]["attempt_timeout_s"]),
        stall_timeout=float(cfg["download"]["stall_timeout_s"]),
        prefetch_max_size=str(cfg["download"]["prefetch_max_size"]),
        threads=max(1, threads),
    )


if "snakemake" in globals():
    from common import setup_logging

    from rnaseq.samples import load_sample_sheet

    setup_logging(snakemake.log[0])
    cfg = snakemake.config["rnaseq"]
    sheet = load_sample_sheet(
        cfg["samples"],
        cfg["transcriptomes"],
        sources=cfg["sources"],
        mirror_base=cfg["mirror_base"],
        default_scheme=cfg["default_scheme"],
    )
    try:
        result = download_run(
            sheet[snakemake.wildcards.run],
            Path(snakemake.output.fastq),
            Path(snakemake.params.partial),
            settings_from_config(cfg, snakemake.threads),
        )
        write_json(snakemake.output.metrics, result)
    except DownloadError as err:
        log.error("%s", err)
        raise SystemExit(1) from None
