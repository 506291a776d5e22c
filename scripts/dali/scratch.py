"""Node-local scratch: where a batch's shadow directory is, a lock that marks it live, a stamp that
marks it finished, and the cleaning of shadow directories that killed jobs left behind.

Snakemake creates a shadow directory as ``mkdtemp(dir=<shadow-prefix>/shadow)``, runs the job with
that as its working directory, then (in the Snakemake process that ran the job: the head locally, the
job's own Snakemake on SLURM) moves the outputs out and removes it. A SIGKILL (OOM killer, walltime,
preemption, a killed head) leaves the directory behind.

Each ``dali_batch`` job holds an exclusive ``flock`` on ``.dali-job.lock`` in its shadow directory for
its whole life, and records in it the Snakemake processes above it (pid and start time). Before it
releases the lock it writes ``.dali-job.finished``. The next job on the node removes a directory only
when its job is certainly dead and will never be unshadowed:

* its lock file is free (the kernel releases a flock when its holder dies) and none of the recorded
  Snakemake processes is alive on this host: nobody will move its outputs any more. A finished
  directory (stamp present) whose Snakemake is alive is never touched: that Snakemake is about to move
  the outputs out (removing it then was the race of issue 13);
* no lock file: a job killed before its script took the lock (or Snakemake's own clean-up cut by a
  kill, when the work directory ``c/`` that is made only under the lock remains): by age, after
  ``stale_after_s`` (``LOCK_GRACE_S`` for the half-removed case), as nothing can tell whose it was.

Template copies cut by a kill (``.tmp.<uid>.<host>.<pid>.*`` in the cache) go when their pid is dead on
this host, or after ``stale_after_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("hpcpipe")

JOB_LOCK = ".dali-job.lock"
JOB_FINISHED = ".dali-job.finished"
WORK_DIRNAME = "c"  # the script's work directory inside its shadow directory (short: DaliLite's path limit)
CACHE_DIR_NAME = "dali-template-cache"
# A lock file younger than this may be between its creation and its flock (microseconds apart).
LOCK_GRACE_S = 5.0


def scratch_prefix_of(shadow_dir: Path) -> Path:
    """The ``--shadow-prefix`` a job runs under, read from its own shadow directory.

    Deriving it from the working directory keeps one source of truth (the profile's
    ``shadow-prefix``): a second setting could drift and silently put the cache on shared storage.
    """
    shadow_dir = Path(shadow_dir).resolve()
    if shadow_dir.parent.name != "shadow":
        raise RuntimeError(
            f"{shadow_dir} is not a Snakemake shadow directory (<prefix>/shadow/tmp*): "
            "rule dali_batch must run with shadow"
        )
    return shadow_dir.parent.parent


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None if it is gone.

    A pid with its start time names one process for good: a later process may reuse the pid, not both.
    """
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def snakemake_ancestors(pid: int | None = None) -> list[list]:
    """``[pid, start]`` of every process above ``pid`` (default: this one) whose command line names
    Snakemake: one of them is the process that will move the job's outputs out of its shadow dir."""
    found, pid = [], os.getpid() if pid is None else pid
    for _ in range(64):  # a bound, in case /proc shows a cycle
        try:
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, ValueError, IndexError):
            break
        if pid <= 1:
            break
        if b"snakemake" in cmdline:
            found.append([pid, process_start(pid)])
    return found


@contextlib.contextmanager
def hold_job_lock(shadow_dir: Path, unshadowers: list[list] | None = None) -> Iterator[Path]:
    """Hold an exclusive flock on ``<shadow_dir>/.dali-job.lock`` while the block runs.

    The lock file records this host and ``unshadowers`` (default: :func:`snakemake_ancestors`), the
    processes that will move the outputs out after the job: the cleaner leaves the directory alone
    while one of them lives. Call :func:`mark_finished` as the last thing inside the block.
    """
    path = Path(shadow_dir) / JOB_LOCK
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "start": round(time.time()),
        "unshadowers": snakemake_ancestors() if unshadowers is None else unshadowers,
    }
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        yield path


def mark_finished(shadow_dir: Path) -> None:
    """Stamp the job finished; call it while holding the job lock, after the outputs are written.

    From then on the directory belongs to the Snakemake process that unshadows it: the cleaner
    never removes it while that process lives, lock or no lock.
    """
    (Path(shadow_dir) / JOB_FINISHED).write_text(f"{time.time():.0f}\n")


def unshadower_alive(lock: Path) -> bool:
    """Whether a process recorded in the lock file may still move the outputs out (True when unsure:
    another host, or a record that cannot be read while the directory is finished)."""
    try:
        record = json.loads(lock.read_text())
    except (OSError, ValueError):
        return (lock.parent / JOB_FINISHED).exists()
    if not isinstance(record, dict) or record.get("host") != socket.gethostname():
        return True
    return any(process_start(pid) == start for pid, start in record.get("unshadowers", []))


def lock_is_held(path: Path) -> bool:
    """Whether a live process holds the flock on ``path`` (False if the file is gone)."""
    try:
        handle = open(path, "a+")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def is_dali_shadow_dir(path: Path) -> bool:
    """A shadow directory of this rule: it has our lock file, or the ``logs/dali`` tree Snakemake made."""
    return (path / JOB_LOCK).exists() or (path / "logs" / "dali").is_dir()


def copier_dead(name: str, age: float) -> bool:
    """Whether the process that copied ``.tmp.<uid>.<host>.<pid>.<random>`` died on this host."""
    parts = name.rsplit(".", 3)  # ".tmp.<uid>", host, pid, random (the uid may hold dots)
    if len(parts) != 4 or age < LOCK_GRACE_S or parts[1] != socket.gethostname().replace(".", "_"):
        return False
    return parts[2].isdigit() and process_start(int(parts[2])) is None


def _age(path: Path, now: float) -> float:
    """Seconds since ``path`` last changed (0 if it has just gone)."""
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def clean_stale_scratch(
    scratch_prefix: Path, stale_after_s: float, keep: Path | None = None, now: float | None = None
) -> list[Path]:
    """Remove dead ``dali_batch`` shadow directories and half-copied cache files; return what went.

    A shadow directory of this rule goes when its job is dead and will never be unshadowed: its
    lock file is free (and older than ``LOCK_GRACE_S``) and no Snakemake process recorded in it is
    alive on this host (a record from another host counts as alive); or the lock file is gone but
    the work directory is there and the job never finished (Snakemake's clean-up of a failed job cut
    by a kill) and nothing in the directory changed for ``LOCK_GRACE_S``; or, without a lock file,
    the directory is older than ``stale_after_s``. Other workflows' shadow directories are never
    touched.
    """
    now = time.time() if now is None else now
    removed = []
    shadow_root = Path(scratch_prefix) / "shadow"
    keep = Path(keep).resolve() if keep else None
    with contextlib.suppress(FileNotFoundError), os.scandir(shadow_root) as entries:
        for entry in entries:
            path = Path(entry.path)
            if not entry.is_dir(follow_symlinks=False) or (keep and path.resolve() == keep):
                continue
            if not is_dali_shadow_dir(path):
                continue
            lock = path / JOB_LOCK
            if lock.exists():
                if _age(lock, now) < LOCK_GRACE_S or lock_is_held(lock):
                    continue
                if unshadower_alive(lock):
                    continue
            elif _age(path, now) < (
                LOCK_GRACE_S
                if (path / WORK_DIRNAME).is_dir() and not (path / JOB_FINISHED).exists()
                else stale_after_s
            ):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    cache_root = Path(scratch_prefix) / CACHE_DIR_NAME
    with contextlib.suppress(FileNotFoundError):
        for tmp in cache_root.glob("*/.tmp.*"):
            with contextlib.suppress(FileNotFoundError):
                if now - tmp.stat().st_mtime >= stale_after_s or copier_dead(
                    tmp.name, now - tmp.stat().st_mtime
                ):
                    tmp.unlink()
                    removed.append(tmp)
    for path in removed:
        log.info("removed stale scratch %s", path)
    return removed
