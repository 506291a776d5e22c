"""A cap on the runs whose FASTQs are on disk at once, across every job (local or SLURM).

Snakemake's global resources cap downloads and quantifications separately, so runs that finished
downloading pile up while they wait for a kallisto slot. The seed bounded disk by running download
and quantification of a run in one of 5 workers; here a download takes a *disk slot* before its
first byte and the quantification gives it back once it has deleted the FASTQs.

A slot is a token file ``<slots>/<run>``. It is held while the download that took it is alive
(the process keeps an ``flock`` on it) or while the run's FASTQ folder holds a ``reads.json``
(downloaded, waiting for or being quantified). A token with neither (a killed download) is stale
and is reclaimed. Slots are counted under an ``flock`` of ``<slots>/.lock``, so two jobs never take
the last slot together; the file system must support ``flock`` across nodes (NFS v4, Lustre with
``flock`` mounted, GPFS do).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("hpcpipe")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(token: Path) -> bool:
    """True when a live process holds the token's flock."""
    try:
        fd = os.open(token, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def held_slots(slots: Path, fastq_root: Path) -> list[str]:
    """Runs holding a slot now; stale tokens are removed (call under the lock)."""
    held = []
    for token in sorted(slots.glob("[SED]RR*")):
        if (fastq_root / token.name / "reads.json").exists() or _alive(token):
            held.append(token.name)
        else:
            log.info("disk slot of %s is stale (no live download, no FASTQ): reclaimed", token.name)
            token.unlink(missing_ok=True)
    return held


def acquire(run: str, slots: Path, fastq_root: Path, limit: int, poll: float = 0.5) -> tuple[int, str]:
    """Wait for a free slot and take it for ``run``; return (an fd holding it, the UTC time taken).

    Keep the fd open for as long as the download runs (closing it, or the process ending, lets a
    FASTQ folder with ``reads.json`` carry the slot on, or frees it).
    """
    slots.mkdir(parents=True, exist_ok=True)
    waited = set()
    while True:
        with _locked(slots / ".lock"):
            held = held_slots(slots, fastq_root)
            if run in held or len(held) < limit:
                token = slots / run
                fd = os.open(token, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    # never block while holding .lock: that would stop every other download too
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd, datetime.now(UTC).isoformat(timespec="milliseconds")
                except BlockingIOError:
                    os.close(fd)
                    reason = "an earlier attempt of this run is still alive and holds its slot"
            else:
                reason = f"{len(held)} runs' FASTQs on disk (limit {limit})"
        if reason not in waited:
            # logged once per reason: a kill that left the earlier attempt's process running
            # (a node without cgroup process tracking) shows here, not as a silent hang
            log.info("%s: %s: waiting", run, reason)
            waited.add(reason)
        time.sleep(poll)  # a slot frees when another job deletes its FASTQs: poll that state


def release(run: str, slots: Path) -> None:
    """Give ``run``'s slot back (its FASTQs are gone or were never written)."""
    with _locked(slots / ".lock"):
        (slots / run).unlink(missing_ok=True)
