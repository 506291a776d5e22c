"""The last af3 step: fail the run naming each job that failed in organize, after the others were
tabulated, summarized (and uploaded).

A failed job has no marker, so its chunk organizes it again, and only it, when the chunk next runs.
This step makes the chunk run next time: it writes ``state/retry/chunk-NNN.txt`` (an attempt number
and the failed jobs), which the chunk rule reads as a parameter; a changed parameter reruns a job.
(Touching the chunk manifest would not: Snakemake ignores a newer mtime when the content is the same.)
"""

import csv
import logging
import os
from pathlib import Path

from common import atomic_open, setup_logging, write_json

log = logging.getLogger("hpcpipe")


def failed_jobs(failed_tsv: str | os.PathLike) -> list[dict]:
    """The ``failed`` lines of failed.tsv (organize failures; gone jobs and bad values are reports)."""
    with open(failed_tsv, newline="") as handle:
        return [r for r in csv.DictReader(handle, delimiter="\t") if r["status"] == "failed"]


def retry_next_time(failures: list[dict], retry_dir: Path) -> list[str]:
    """Write a new retry note for each chunk holding ``failures``; return the chunk ids."""
    chunks = sorted({f["chunk"] for f in failures})
    for chunk in chunks:
        note = retry_dir / f"chunk-{chunk}.txt"
        attempt = int(note.read_text().split()[1]) if note.exists() else 0
        jobs = sorted(f["item"] for f in failures if f["chunk"] == chunk)
        with atomic_open(note) as handle:
            handle.write(f"attempt {attempt + 1}\n" + "".join(f"{job}\n" for job in jobs))
    return chunks


def retry_note(retry_dir: str | os.PathLike, chunk: str) -> str:
    """The chunk's retry note ("" when none): a parameter of af3_organize_chunk."""
    try:
        return (Path(retry_dir) / f"chunk-{chunk}.txt").read_text()
    except FileNotFoundError:
        return ""


def main(smk) -> None:
    setup_logging(smk.log[0])
    failures = failed_jobs(smk.input.failed)
    if failures:
        chunks = retry_next_time(failures, Path(smk.params.retry_dir))
        for f in failures:
            log.error("af3 job %s failed: %s: %s", f["item"], f["file"], f["reason"])
        raise SystemExit(
            f"af3: {len(failures)} job(s) failed in organize (the others are in the tables, summary and "
            f"upload; listed in {smk.input.failed}); the next run retries them (chunks {' '.join(chunks)}):\n"
            + "\n".join(f"  {f['item']}: {f['file']}: {f['reason']}" for f in failures)
        )
    write_json(smk.output[0], {"failed_jobs": 0})
    log.info("af3: every discovered complete job is organized")


if "snakemake" in globals():
    main(snakemake)
