"""Shared pytest fixtures: the repository paths, a Snakemake runner, and a real SLURM."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(SCRIPTS))  # tests import the scripts' functions directly


# For runs on the test SLURM: the first status check after 2 s (the profile's 40 s suits a real
# queue) and then every 2 s (Snakemake's default is 10 s), so that a test waits on its jobs, not on polling.
SLURM_QUICK = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]

# Every SLURM job of this pytest session is named with this prefix (profiles/slurm's is `hpcpipe`):
# two suite runs on one machine never see, wait on or cancel each other's jobs. Fixed length, so
# that no session's prefix is the start of another's.
JOB_PREFIX = f"hpcpipe-{secrets.token_hex(4)}"

# `make test` sets it: there a missing SLURM (or missing root to start one) fails the SLURM tests
# instead of skipping them, so that CI cannot go green without having run them.
REQUIRE_SLURM = os.environ.get("HPCPIPE_REQUIRE_SLURM", "") not in ("", "0")

CLUSTER_SCRIPT = REPO / "tests" / "slurm_cluster.sh"

# Snakemake processes started by the tests; those still alive when their test ends (a failure, a
# pytest-timeout) are killed with their process group, so that no head keeps submitting jobs.
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def start_snakemake(cmd: list[str], **popen_args) -> subprocess.Popen:
    """Popen ``cmd`` in its own process group and remember it until it is reaped or killed."""
    proc = subprocess.Popen(cmd, start_new_session=True, **popen_args)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    return proc


def kill_live_snakemake() -> list[int]:
    """SIGKILL the process group of every Snakemake process of this session still alive; their pids."""
    killed = []
    with _LIVE_LOCK:
        procs = list(_LIVE)
        _LIVE.clear()
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed.append(proc.pid)
    return killed


def _ensure_slurm_controller() -> None:
    """Start the test SLURM once per session, the first time a test starts Snakemake.

    Where ``sinfo`` is on PATH, the SLURM executor plugin runs ``scontrol show config`` each time
    Snakemake starts (at import, whatever the profile), and with no controller to answer it waits
    for its 10 s timeout: a whole suite of ``profiles/local`` runs would spend minutes waiting.
    Started here, lazily, so that a run of unit tests alone starts no daemon. Where the cluster
    cannot start, this does nothing: the SLURM tests fail (or skip) on their own, naming why.
    """
    global _controller_tried
    with _CONTROLLER_LOCK:
        if _controller_tried or shutil.which("sinfo") is None:
            return
        _controller_tried = True
        with contextlib.suppress(OSError):
            subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=300)


_controller_tried = False
_CONTROLLER_LOCK = threading.Lock()


def snakemake_env(path: str | None = None) -> dict:
    """The environment of a Snakemake run: the venv first on ``path`` (default: ours).

    Also makes sure the test SLURM answers the plugin's start-up query (see ``_ensure_slurm_controller``).
    """
    _ensure_slurm_controller()
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{path or env.get('PATH', '')}"
    return env


def snakemake_command(
    workdir: Path, config: dict, targets: list[str], profile: str = "local", extra: list[str] | None = None
) -> list[str]:
    """Write ``config`` to workdir/test-config.yaml; return the Snakemake command that runs it.

    On ``profiles/slurm`` the jobs are named with this session's ``JOB_PREFIX`` and shadow
    directories go to workdir/.scratch, unless ``extra`` names its own.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    extra = list(extra or [])
    if profile == "slurm" and "--slurm-jobname-prefix" not in extra:
        extra += ["--slurm-jobname-prefix", JOB_PREFIX]
    if profile == "slurm" and "--shadow-prefix" not in extra:
        # not the profile's /tmp/hpcpipe-scratch: a test leaves nothing outside its own directory
        extra += ["--shadow-prefix", str(workdir.resolve() / ".scratch")]
    return [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--profile",
        str(REPO / "profiles" / profile),
        "--configfile",
        str(cfg),
        *extra,
        # options such as --configfile take several values: `--` ends them before the targets
        "--",
        *targets,
    ]


def run_workflow(
    workdir: Path,
    config: dict,
    targets: list[str] | None = None,
    profile: str = "local",
    extra: list[str] | None = None,
    check: bool = True,
    timeout: float = 900,
    path: str | None = None,
) -> subprocess.CompletedProcess:
    """Run the package's Snakefile in ``workdir`` with ``config`` (written to workdir/config.yaml).

    Returns the completed process (stdout and stderr merged into ``.stdout``); with ``check``,
    a non-zero exit fails the test and shows Snakemake's output. ``path`` replaces PATH.
    Past ``timeout`` (or when the test is interrupted) Snakemake and its local jobs are killed.
    """
    cmd = snakemake_command(workdir, config, targets or [], profile, extra)
    proc = start_snakemake(
        cmd, cwd=workdir, env=snakemake_env(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake exited {proc.returncode}: {' '.join(cmd)}\n{stdout[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, None)


def cancel_session_jobs() -> None:
    """scancel every job of this session still queued or running (a killed head leaves them)."""
    if shutil.which("squeue") is None:
        return
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j"], capture_output=True, text=True).stdout
    ids = [line.split("|")[0] for line in out.splitlines() if line.split("|")[-1].startswith(JOB_PREFIX)]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, check=False)


@pytest.fixture(autouse=True)
def _no_snakemake_outlives_its_test():
    """A head left running by a failed or timed-out test is killed, never left submitting."""
    yield
    kill_live_snakemake()


@pytest.fixture(scope="session", autouse=True)
def _no_job_outlives_the_session():
    yield
    kill_live_snakemake()
    cancel_session_jobs()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM (Debian's slurm-wlm), started (or restarted on another config) if needed.

    Left running at the end: other test runs on this machine may be using it (stop it with
    ``tests/slurm_cluster.sh stop``). Without SLURM and without root to install it, the SLURM tests
    are skipped, except under ``make test`` (HPCPIPE_REQUIRE_SLURM=1), where they fail.
    """
    missing = None
    if shutil.which("sbatch") is None and os.geteuid() != 0:
        missing = "SLURM is not installed and we are not root to install it"
    elif shutil.which("sbatch") is None and shutil.which("apt-get") is None:
        missing = "SLURM is not installed and there is no apt-get to install it"
    if missing:
        if REQUIRE_SLURM:
            pytest.fail(f"{missing} (HPCPIPE_REQUIRE_SLURM is set: the SLURM tests must run)")
        pytest.skip(missing)
    out = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"could not start the test SLURM:\n{out.stdout}\n{out.stderr}")
    yield
