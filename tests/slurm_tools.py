"""Drive a Snakemake head process against the test SLURM and disturb it as a cluster would.

Used by the resilience tests: start ``snakemake --profile profiles/slurm`` in the background,
wait for one of its jobs to run, requeue it (preemption) or kill the head process, cancel
leftovers by the job-name prefix, and compare result trees byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import JOB_PREFIX, snakemake_command, snakemake_env, start_snakemake

ENDED = ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED")


def slurm_jobs(prefix: str = JOB_PREFIX, active_only: bool = False) -> list[dict]:
    """Jobs in the queue whose name starts with ``prefix``: id, name, state, comment (rule).

    squeue keeps ended jobs for MinJobAge seconds; ``active_only`` leaves them out.
    """
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%j|%T|%k"], capture_output=True, text=True, check=True
    ).stdout
    jobs = []
    for line in out.splitlines():
        job_id, name, state, comment = line.split("|", 3)
        if name.startswith(prefix) and not (active_only and state in ENDED):
            jobs.append({"id": job_id, "name": name, "state": state, "comment": comment})
    return jobs


def job_processes(job_ids: list[str]) -> list[int]:
    """Processes on this node that belong to the given SLURM jobs.

    Read from each process's environment (SLURM_JOB_ID), which every descendant of a job inherits:
    ``scontrol listpids`` relies on proctrack/linuxproc's parent chain, which the test node can lose.
    """
    wanted = {f"SLURM_JOB_ID={job_id}".encode() for job_id in job_ids}
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted.intersection(environ):
            pids.append(int(entry.name))
    return pids


def cancel_leftovers(prefix: str = JOB_PREFIX, hard: bool = False) -> list[str]:
    """Cancel every queued or running job of ours (what the README tells a user to do).

    ``hard`` first SIGKILLs every process of the jobs on this node (see ``job_processes``), as the
    OOM killer or a node failure would: no job gets to clean up after itself. (``scancel`` alone
    lets Snakemake inside the job shut down and remove its shadow directories.)
    Returns the ids of the jobs that were still active.
    """
    ids = [job["id"] for job in slurm_jobs(prefix, active_only=True)]
    if hard:
        for _ in range(3):  # again, for children started while we were killing
            for pid in job_processes(ids):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
    if ids:
        subprocess.run(["scancel", *ids], check=False)
    deadline = time.monotonic() + 60
    while slurm_jobs(prefix, active_only=True) and time.monotonic() < deadline:
        time.sleep(1)
    return ids


def start_head(
    workdir: Path, config: dict, targets: list[str], extra: list[str] | None = None
) -> subprocess.Popen:
    """Start ``snakemake --profile profiles/slurm`` in the background; its output goes to head.log."""
    cmd = snakemake_command(workdir, config, targets, "slurm", extra)
    log = open(workdir / "head.log", "a")  # noqa: SIM115 - closed by the OS when the test ends
    return start_snakemake(cmd, cwd=workdir, env=snakemake_env(), stdout=log, stderr=subprocess.STDOUT)


def wait_for_running_job(
    head: subprocess.Popen, rule_substring: str = "", timeout: float = 300, prefix: str = JOB_PREFIX
) -> dict:
    """Wait until one of our SLURM jobs (optionally of a given rule) is RUNNING and return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in slurm_jobs(prefix):
            if job["state"] == "RUNNING" and rule_substring in job["comment"]:
                return job
        if head.poll() is not None:
            raise AssertionError(f"snakemake ended (exit {head.returncode}) before a job ran")
        time.sleep(0.5)
    raise AssertionError(f"no running job matching {rule_substring!r} within {timeout} s")


def job_state(job_id: str) -> str:
    """The job's state as the controller has it now (RUNNING, PENDING, COMPLETED, ...), with its restarts."""
    show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    state = re.search(r"JobState=(\S+)", show)
    return state[1] if state else "UNKNOWN"


def job_restarts(job_id: str) -> int:
    show = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
    restarts = re.search(r"Restarts=(\d+)", show)
    return int(restarts[1]) if restarts else 0


def freeze(job_ids: list[str]) -> list[int]:
    """SIGSTOP every process of the given jobs (see ``job_processes``); return their pids.

    A frozen job stays RUNNING for SLURM, and whatever state it was in (a half-written file, a
    shadow directory, a transfer in flight) stays as it is until it is killed or thawed: the
    disturbance then hits exactly the state a test observed, never a job that has just ended.
    """
    frozen: set[int] = set()
    for _ in range(3):  # again, for children forked while we were stopping their parents
        for pid in set(job_processes(job_ids)) - frozen:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
                frozen.add(pid)
    return sorted(frozen)


def thaw(pids: list[int]) -> None:
    """SIGCONT the processes ``freeze`` stopped (those still alive)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGCONT)


def requeue(job_ids: list[str], frozen: list[int] | None = None) -> None:
    """Preempt running jobs the way SLURM does with PreemptMode=REQUEUE, and let them start again now.

    ``frozen``: the jobs' processes stopped by ``freeze``; they are thawed once the controller has
    taken every job out of RUNNING, so that they receive SLURM's signals and end.
    """
    for job_id in job_ids:
        subprocess.run(["scontrol", "requeue", job_id], check=True)
    # A requeued job waits ~2 minutes (BeginTime) by default; a preempted job on a busy cluster
    # would wait for resources instead. Starting it now keeps the test short. The update only
    # takes once the job is back to PENDING (after its processes are gone).
    waiting, thawed = set(job_ids), not frozen
    deadline = time.monotonic() + 90
    while waiting and time.monotonic() < deadline:
        shows = {
            job_id: subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
            for job_id in job_ids
        }
        if not thawed and all(
            "JobState=RUNNING" not in show or "Restarts=0" not in show for show in shows.values()
        ):
            thaw(frozen)
            thawed = True
        for job_id in sorted(waiting):
            show = shows[job_id]
            if "JobState=PENDING" in show:
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=False)
                show = subprocess.run(
                    ["scontrol", "show", "job", job_id], capture_output=True, text=True
                ).stdout
                if "Reason=BeginTime" not in show:
                    waiting.discard(job_id)
            elif "JobState=RUNNING" in show and "Restarts=0" not in show:
                waiting.discard(job_id)
        time.sleep(0.5)
    if frozen and not thawed:
        thaw(frozen)
    assert not waiting, f"jobs {sorted(waiting)} did not start again within 90 s of their requeue"


def kill_head(head: subprocess.Popen) -> None:
    """SIGKILL the head process, as a lost login session or an OOM killer would."""
    os.kill(head.pid, signal.SIGKILL)  # the head alone: its SLURM jobs are not in its process group
    head.wait()


def tree_digest(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative paths), skipping names matching ``exclude``."""
    digests = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(Path(rel).match(pattern) for pattern in exclude):
            digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests
