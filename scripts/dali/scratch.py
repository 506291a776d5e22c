"""Node-local scratch: where the rule's shadow directory is, a lock that marks it live, and the
cleaning of shadow directories that killed jobs left behind.

Snakemake creates a shadow directory as ``mkdtemp(dir=<shadow-prefix>/shadow)`` and runs the job
with that as its working directory; it removes it when the job ends, but a SIGKILL (OOM killer,
walltime, preemption, a killed head process) leaves it. Each ``dali_iterative`` job therefore holds an
exclusive ``flock`` on ``.dali-job.lock`` in its own shadow directory for its whole life; the next job
on the node removes directories of this workflow whose lock is free: their job is dead, since the kernel
releases a flock when its holder dies (a running job, or its still-running orphans, which inherit the
descriptor, are never cleaned). A directory without a lock file may belong to a job that has not
started its script yet (on a loaded node that can take minutes): it goes only after ``stale_after_s``,
unless it holds the script's work directory ``c/``, made only under the lock: then its lock file was
there and went with the rest of the directory in Snakemake's own clean-up, which a kill interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("hpcpipe")

JOB_LOCK = ".dali-job.lock"
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
            "rule dali_iterative must run with shadow"
        )
    return shadow_dir.parent.parent


@contextlib.contextmanager
def hold_job_lock(shadow_dir: Path) -> Iterator[Path]:
    """Hold an exclusive flock on ``<shadow_dir>/.dali-job.lock`` while the block runs."""
    path = Path(shadow_dir) / JOB_LOCK
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.truncate(0)
        handle.write(f"pid={os.getpid()} host={socket.gethostname()} start={time.time():.0f}\n")
        handle.flush()
        yield path


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


def _age(path: Path, now: float) -> float:
    """Seconds since ``path`` last changed (0 if it has just gone)."""
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def clean_stale_scratch(
    scratch_prefix: Path, stale_after_s: float, keep: Path | None = None, now: float | None = None
) -> list[Path]:
    """Remove dead ``dali_iterative`` shadow directories and half-copied cache files; return what went.

    A shadow directory of this rule goes when its job is dead: its lock file exists and is free
    (and is older than ``LOCK_GRACE_S``); or the lock file is gone but the work directory is there
    (a clean-up killed midway) and nothing in the directory changed for ``LOCK_GRACE_S``; or, if the
    job never took its lock, the directory is older than ``stale_after_s``. Other workflows' shadow
    directories are never touched.
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
            elif _age(path, now) < (LOCK_GRACE_S if (path / WORK_DIRNAME).is_dir() else stale_after_s):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    cache_root = Path(scratch_prefix) / CACHE_DIR_NAME
    with contextlib.suppress(FileNotFoundError):
        for tmp in cache_root.glob("*/.tmp.*"):
            with contextlib.suppress(FileNotFoundError):
                if now - tmp.stat().st_mtime >= stale_after_s:
                    tmp.unlink()
                    removed.append(tmp)
    for path in removed:
        log.info("removed stale scratch %s", path)
    return removed
